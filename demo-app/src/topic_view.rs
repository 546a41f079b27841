//! The topic view on :8080: topics, partitions, offsets, consumer groups and their lag, and
//! the latest messages of a topic, for the embedded broker (docker-compose users get Kafka
//! UI on that port instead).
//!
//! Plain server-rendered HTML over the [`ClusterMonitor`](crate::monitor)'s last sample
//! (`/`, `/topics/{name}`), and the same as JSON (`/api/cluster`,
//! `/api/topics/{name}/messages?limit=`).

use std::sync::{Arc, RwLock};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::ClientConfig;
use serde::Deserialize;

use crate::http::ApiError;
use crate::monitor::{latest_messages, ClusterView, MessageView};

/// The topic view's state.
#[derive(Clone)]
pub struct TopicView {
    cluster: Arc<RwLock<ClusterView>>,
    client: ClientConfig,
}

/// `?limit=` of the messages pages.
#[derive(Debug, Deserialize)]
pub struct Limit {
    /// Messages per partition, 1..=200 (default 20).
    pub limit: Option<i64>,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Encodes a topic name for a URL path segment.
fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

const STYLE: &str = "<style>body{font:14px system-ui,sans-serif;margin:20px;color:#222}\
table{border-collapse:collapse;margin-bottom:20px}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:left}th{background:#f2f2f2}.muted{color:#888}pre{margin:0;white-space:pre-wrap;\
max-width:900px}</style>";

impl TopicView {
    /// The view over `cluster`; `client` reads messages.
    pub fn new(cluster: Arc<RwLock<ClusterView>>, client: ClientConfig) -> Self {
        TopicView { cluster, client }
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(overview))
            .route("/topics/{name}", get(topic_page))
            .route("/api/cluster", get(cluster_json))
            .route("/api/topics/{name}/messages", get(messages_json))
            .with_state(self)
    }

    async fn messages(
        &self,
        name: String,
        limit: Option<i64>,
    ) -> Result<Vec<MessageView>, ApiError> {
        let limit = limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return Err(ApiError::bad_request("limit must be between 1 and 200"));
        }
        let known = self
            .cluster
            .read()
            .expect("cluster view")
            .topics
            .iter()
            .any(|t| t.name == name);
        if !known {
            return Err(ApiError::not_found(format!("no topic {name}")));
        }
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || latest_messages(&client, &name, limit))
            .await
            .map_err(|e| ApiError::internal("reading messages", e))?
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))
    }
}

async fn cluster_json(State(view): State<TopicView>) -> Json<ClusterView> {
    Json(view.cluster.read().expect("cluster view").clone())
}

async fn messages_json(
    State(view): State<TopicView>,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    view.messages(name, limit.limit).await.map(Json)
}

async fn overview(State(view): State<TopicView>) -> Html<String> {
    let cluster = view.cluster.read().expect("cluster view").clone();
    let mut html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>shop — topics</title>\
         <meta http-equiv=refresh content=5>{STYLE}</head><body><h1>Topics and consumer groups</h1>\
         <p class=muted>sampled {} · {:.1} records/s{}</p>",
        chrono::DateTime::from_timestamp_millis(cluster.sampled_at)
            .map(|t| t.format("%H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "not yet".into()),
        cluster.records_per_second,
        cluster
            .error
            .as_ref()
            .map(|e| format!(" · last sample failed: {}", escape(e)))
            .unwrap_or_default()
    );
    html.push_str(
        "<h2>Topics</h2><table><tr><th>topic</th><th>partitions</th><th>messages</th>\
         <th>offsets (partition: low–high)</th></tr>",
    );
    for topic in &cluster.topics {
        let offsets: Vec<String> = topic
            .partitions
            .iter()
            .map(|p| format!("{}: {}–{}", p.partition, p.low, p.high))
            .collect();
        html.push_str(&format!(
            "<tr><td><a href=\"/topics/{}\">{}</a>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            path_segment(&topic.name),
            escape(&topic.name),
            if topic.internal {
                " <span class=muted>internal</span>"
            } else {
                ""
            },
            topic.partitions.len(),
            topic.messages,
            offsets.join(", ")
        ));
    }
    html.push_str(
        "</table><h2>Consumer groups</h2><table><tr><th>group</th><th>state</th>\
         <th>members</th><th>lag</th><th>per partition (committed / lag)</th></tr>",
    );
    for group in &cluster.groups {
        let parts: Vec<String> = group
            .partitions
            .iter()
            .map(|p| {
                format!(
                    "{}/{}: {} / {}",
                    escape(&p.topic),
                    p.partition,
                    p.committed,
                    p.lag
                )
            })
            .collect();
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&group.group),
            escape(&group.state),
            group.members,
            group.lag,
            parts.join("<br>")
        ));
    }
    html.push_str("</table></body></html>");
    Html(html)
}

async fn topic_page(
    State(view): State<TopicView>,
    Path(name): Path<String>,
    Query(limit): Query<Limit>,
) -> Result<Html<String>, ApiError> {
    let messages = view.messages(name.clone(), limit.limit).await?;
    let mut html = format!(
        "<!doctype html><html><head><meta charset=utf-8><title>{0}</title>{STYLE}</head><body>\
         <p><a href=\"/\">← topics</a></p><h1>{0}</h1><p class=muted>latest {1} messages, newest first</p>\
         <table><tr><th>partition</th><th>offset</th><th>time</th><th>key</th><th>headers</th><th>value</th></tr>",
        escape(&name),
        messages.len()
    );
    for m in &messages {
        let headers: Vec<String> = m
            .headers
            .iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect();
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            m.partition,
            m.offset,
            m.timestamp
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.format("%H:%M:%S%.3f").to_string())
                .unwrap_or_default(),
            escape(m.key.as_deref().unwrap_or("")),
            headers.join("<br>"),
            escape(m.value.as_deref().unwrap_or("null"))
        ));
    }
    html.push_str("</table></body></html>");
    Ok(Html(html))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_and_paths_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(path_segment("order-events"), "order-events");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}
