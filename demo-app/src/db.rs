//! The shop's database: SQLite by default (a file), PostgreSQL when `--database-url` says so.
//!
//! One schema, written in the SQL both understand, applied at start ([`Database::connect`]).
//! Services own their tables (orders and idempotency keys: order service; products:
//! inventory service), and every service that publishes events writes them to the `outbox`
//! table in the same transaction as its own change; [`crate::outbox`] relays them to Kafka.
//! `processed_events` is the deduplication record of consumers that write to the database.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::app::Service;
use crate::events::topics;

/// The schema, one statement per entry (both dialects).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS products (
        product_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        unit_price TEXT NOT NULL,
        available BIGINT NOT NULL,
        reserved BIGINT NOT NULL,
        threshold BIGINT NOT NULL,
        CONSTRAINT products_stock_non_negative CHECK (available >= 0 AND reserved >= 0)
    )",
    "CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        total TEXT NOT NULL,
        currency TEXT NOT NULL,
        variant TEXT NOT NULL,
        items TEXT NOT NULL,
        reason TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer_id, created_at)",
    "CREATE TABLE IF NOT EXISTS idempotency_keys (
        customer_id TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        order_id TEXT NOT NULL,
        PRIMARY KEY (customer_id, idempotency_key)
    )",
    "CREATE TABLE IF NOT EXISTS outbox (
        event_id TEXT PRIMARY KEY,
        source TEXT,
        topic TEXT NOT NULL,
        record_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        headers TEXT,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS outbox_relay (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT NOT NULL,
        product_id TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (order_id, product_id)
    )",
    "CREATE TABLE IF NOT EXISTS shipments (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        carrier TEXT NOT NULL,
        cost TEXT NOT NULL,
        tracking TEXT,
        deliver_at BIGINT,
        status TEXT NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS shipments_due ON shipments (status, deliver_at)",
    "CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        topic TEXT NOT NULL,
        kafka_partition INTEGER NOT NULL,
        kafka_offset BIGINT NOT NULL,
        record_key TEXT NOT NULL,
        payload TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        recorded_at BIGINT NOT NULL
    )",
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_log_source
        ON audit_log (topic, kafka_partition, kafka_offset)",
    "CREATE TABLE IF NOT EXISTS notification_preferences (
        channel TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        enabled BIGINT NOT NULL,
        contact TEXT NOT NULL,
        PRIMARY KEY (channel, customer_id)
    )",
    "CREATE TABLE IF NOT EXISTS sent_notifications (
        channel TEXT NOT NULL,
        event_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        contact TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        sent_at BIGINT NOT NULL,
        PRIMARY KEY (channel, event_id)
    )",
    "CREATE INDEX IF NOT EXISTS sent_notifications_by_customer
        ON sent_notifications (customer_id, sent_at)",
    "CREATE TABLE IF NOT EXISTS processed_events (
        consumer TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (consumer, event_id)
    )",
    "CREATE TABLE IF NOT EXISTS analytics_orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        customer_name TEXT,
        customer_country TEXT,
        variant TEXT NOT NULL,
        total TEXT NOT NULL,
        currency TEXT NOT NULL,
        items BIGINT NOT NULL,
        placed_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS analytics_sales (
        granularity TEXT NOT NULL,
        dimension TEXT NOT NULL,
        window_start BIGINT NOT NULL,
        window_end BIGINT NOT NULL,
        orders BIGINT NOT NULL,
        units BIGINT NOT NULL,
        revenue TEXT NOT NULL,
        PRIMARY KEY (granularity, dimension, window_start)
    )",
    "CREATE TABLE IF NOT EXISTS payment_holds (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        score BIGINT NOT NULL,
        reasons TEXT NOT NULL,
        status TEXT NOT NULL,
        request TEXT,
        created_at BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS payments (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        amount TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    )",
];

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting or applying the schema failed.
    #[error("database {url}: {source}")]
    Connect {
        /// The URL (without password).
        url: String,
        /// The driver's error.
        source: sqlx::Error,
    },
}

/// The writer's SQLite settings. WAL with synchronous=NORMAL: a commit does not wait for an
/// fsync (the WAL is synced at checkpoints); a power cut can lose the last commits — a
/// change and its outbox events together, never one without the other. A 64 MiB page
/// cache (SQLite's default is 2 MiB; the shop's database grows by hundreds of MB under
/// load, and every page missed is a system call) and a checkpoint every 10,000 pages
/// instead of 1,000 (pages written again and again between checkpoints are copied once).
const SQLITE_WRITER: &[&str] = &[
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA cache_size=-65536",
    "PRAGMA wal_autocheckpoint=10000",
];

/// The read-only connections' settings: 16 MiB of page cache each.
const SQLITE_READER: &[&str] = &["PRAGMA busy_timeout=5000", "PRAGMA cache_size=-16384"];

async fn sqlite_settings(conn: &mut sqlx::AnyConnection, pragmas: &[&str]) -> sqlx::Result<()> {
    use sqlx::Executor;
    for pragma in pragmas {
        conn.execute(*pragma).await?;
    }
    Ok(())
}

/// The PostgreSQL advisory lock the schema is applied under (any number no other
/// application on the database uses).
const SCHEMA_LOCK: i64 = 0x5348_4f50; // "SHOP"

/// A pool on the shop's database.
#[derive(Clone, Debug)]
pub struct Database {
    pool: AnyPool,
    reader: AnyPool,
    postgres: bool,
}

impl Database {
    /// Connects to `url` (`sqlite://shop.db`, `sqlite::memory:`, `postgres://...`) and applies
    /// the schema. A SQLite file is created when missing.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres");
        let url_with_mode = if !postgres && !url.contains("mode=") && !url.contains(":memory:") {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        } else {
            url.to_owned()
        };
        let connect_error = |source| DbError::Connect {
            url: redact(url),
            source,
        };
        let options = AnyPoolOptions::new()
            // SQLite has one writer at a time, and a transaction that reads before it writes
            // cannot wait for the lock (SQLITE_BUSY on upgrade): one connection serializes
            // the services' short transactions instead.
            .max_connections(if postgres { 10 } else { 1 });
        let pool = if postgres {
            options.connect(&url_with_mode).await
        } else {
            // The one writer lives as long as the pool (an in-memory database is the
            // connection), and every connection the pool opens gets the settings.
            options
                .max_lifetime(None)
                .idle_timeout(None)
                .after_connect(|conn, _| Box::pin(sqlite_settings(conn, SQLITE_WRITER)))
                .connect(&url_with_mode)
                .await
        }
        .map_err(connect_error)?;
        // On PostgreSQL several processes may start at once against one database (the
        // compose services, `--role` processes); two `CREATE TABLE IF NOT EXISTS` racing
        // there fail (a duplicate key in `pg_type`), so the schema is applied under an
        // advisory lock, one process at a time. It is the connection's, released with it.
        let mut conn = pool.acquire().await.map_err(connect_error)?;
        if postgres {
            sqlx::query("SELECT pg_advisory_lock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *conn)
                .await
                .map_err(connect_error)?;
        }
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut *conn)
                .await
                .map_err(connect_error)?;
        }
        migrate(&mut conn, postgres).await.map_err(connect_error)?;
        if postgres {
            sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(SCHEMA_LOCK)
                .execute(&mut *conn)
                .await
                .map_err(connect_error)?;
        }
        drop(conn);
        // Reads that need no transaction go to readers of their own: on SQLite, read-only
        // connections that WAL lets run beside the one writer, so the APIs' reads and the
        // services' lookups never queue behind writes.
        let reader = if postgres || url.contains(":memory:") {
            pool.clone()
        } else {
            let read_only = url_with_mode.replace("mode=rwc", "mode=ro");
            AnyPoolOptions::new()
                .max_connections(4)
                .after_connect(|conn, _| Box::pin(sqlite_settings(conn, SQLITE_READER)))
                .connect(&read_only)
                .await
                .map_err(connect_error)?
        };
        Ok(Database {
            pool,
            reader,
            postgres,
        })
    }

    /// The pool, for writes and transactions (on SQLite one connection: one writer).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A pool for reads outside transactions (the same pool on PostgreSQL; read-only
    /// connections beside the writer on SQLite). It sees what is committed.
    pub fn reader(&self) -> &AnyPool {
        &self.reader
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.postgres
    }

    /// [`for_backend`] for this database.
    pub fn sql<'s>(&self, sql: &'s str) -> std::borrow::Cow<'s, str> {
        for_backend(
            if self.postgres {
                "PostgreSQL"
            } else {
                "SQLite"
            },
            sql,
        )
    }

    /// Records that `consumer` processed `event_id`; false if it already had.
    pub async fn mark_processed(&self, consumer: &str, event_id: &str) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// Brings tables of an earlier version up to date: on PostgreSQL the stock constraint; the
/// writing service of each outbox row (`source`, which relay publishes it; rows written
/// before it existed get the service that writes their topic) and, on PostgreSQL, the
/// outbox's insertion order (`seq`; SQLite has the rowid). SQLite cannot add a constraint
/// to a table, so a database created there before the stock constraint keeps its table
/// without it.
async fn migrate(conn: &mut sqlx::AnyConnection, postgres: bool) -> sqlx::Result<()> {
    if postgres {
        // Stock never negative, on tables created before the constraint was (NOT VALID: rows
        // already there are not checked, every write from now on is).
        sqlx::query(
            "DO $$ BEGIN \
               ALTER TABLE products ADD CONSTRAINT products_stock_non_negative \
                 CHECK (available >= 0 AND reserved >= 0) NOT VALID; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        )
        .execute(&mut *conn)
        .await?;
        // Rows of one transaction share a `created_at`; the relay must keep their order.
        sqlx::query("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS seq BIGSERIAL")
            .execute(&mut *conn)
            .await?;
        sqlx::query("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS source TEXT")
            .execute(&mut *conn)
            .await?;
    } else {
        let has_source: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM pragma_table_info('outbox') WHERE name = 'source'",
        )
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
        if has_source == 0 {
            sqlx::query("ALTER TABLE outbox ADD COLUMN source TEXT")
                .execute(&mut *conn)
                .await?;
        }
    }
    // The service that writes each topic (payment-events has two writers; the order
    // service's relay takes the old rows of it).
    let writers = [
        (topics::USERS, Service::User),
        (topics::INVENTORY, Service::Inventory),
        (topics::SHIPPING, Service::Shipping),
        (topics::PAYMENTS_DLQ, Service::Payment),
    ];
    let cases: String = writers
        .iter()
        .map(|(topic, service)| format!("WHEN '{topic}' THEN '{}' ", service.name()))
        .collect();
    sqlx::query(&format!(
        "UPDATE outbox SET source = CASE topic {cases}ELSE '{}' END WHERE source IS NULL",
        Service::Order.name()
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records in `tx` that `consumer` processed `event_id`; false if it already had (then the
/// caller skips the event, and its transaction changes nothing).
pub async fn first_time(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    consumer: &str,
    event_id: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `sql` as the database behind `conn` runs it best: PostgreSQL takes the `$1, $2, ...` the
/// shop's statements are written with; for SQLite, a statement whose placeholders are
/// `$1..$n`, each once and in that order, gets anonymous `?` placeholders instead.
///
/// Why: SQLite keeps named placeholders (`$n`) in a list it searches linearly, once per
/// placeholder when it parses the statement and again (through sqlx) when it binds, so a
/// multi-row statement of `n` values costs O(n²); a profile of the shop at 1,000 orders/s
/// found 40% of the database thread there. Anonymous placeholders cost O(1) each. A
/// statement that uses a placeholder twice or out of order is left as written.
///
/// ```
/// use demo_app::db::for_backend;
/// assert_eq!(for_backend("SQLite", "VALUES ($1, $2), ($3, $4)"), "VALUES (?, ?), (?, ?)");
/// assert_eq!(for_backend("SQLite", "WHERE a = $1 OR b = $1"), "WHERE a = $1 OR b = $1");
/// assert_eq!(for_backend("PostgreSQL", "VALUES ($1)"), "VALUES ($1)");
/// ```
pub fn for_backend<'s>(backend: &str, sql: &'s str) -> std::borrow::Cow<'s, str> {
    if backend != "SQLite" {
        return sql.into();
    }
    let mut out = String::with_capacity(sql.len());
    let mut expected = 1_u64;
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        match rest[at + 1..at + 1 + digits].parse::<u64>() {
            Ok(n) if n == expected => {
                out.push('?');
                expected += 1;
            }
            // Reused, out of order, or not a placeholder at all (`$$` in a PostgreSQL
            // block): leave the statement as written.
            _ => return sql.into(),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out.into()
}

/// [`for_backend`] for the database of a connection (or transaction).
pub fn for_connection<'s>(conn: &sqlx::AnyConnection, sql: &'s str) -> std::borrow::Cow<'s, str> {
    for_backend(conn.backend_name(), sql)
}

/// The most rows one multi-row statement writes: callers split longer lists, so that a
/// statement stays within both databases' limits on bound values (SQLite 32,766,
/// PostgreSQL 65,535) at up to 30 columns a row.
pub const MAX_ROWS_PER_STATEMENT: usize = 1000;

/// `($1, $2, ...), (...)`: the placeholders of a multi-row `VALUES` of `rows` rows with
/// `columns` values each (the same text for SQLite and PostgreSQL).
///
/// ```
/// assert_eq!(demo_app::db::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
/// ```
pub fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=columns)
                .map(|column| format!("${}", row * columns + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$start, $start+1, ...`: `n` placeholders for an `IN (...)` list.
///
/// ```
/// assert_eq!(demo_app::db::list(2, 3), "$2, $3, $4");
/// ```
pub fn list(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Records in `tx` that `consumer` processed each of `event_ids`, in one statement; returns
/// the ids it had not processed before (the others are redeliveries to skip). An id given
/// twice is returned once: callers take ids out of the set as they apply them, so that the
/// second of two copies in one chunk is skipped too.
pub async fn first_times(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    consumer: &str,
    event_ids: &[&str],
) -> sqlx::Result<std::collections::HashSet<String>> {
    if event_ids.is_empty() {
        return Ok(Default::default());
    }
    let mut unique: Vec<&str> = event_ids.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let sql = format!(
        "INSERT INTO processed_events (consumer, event_id) VALUES {} \
         ON CONFLICT DO NOTHING RETURNING event_id",
        placeholders(unique.len(), 2)
    );
    let sql = for_connection(tx, &sql);
    let mut query = sqlx::query(&sql);
    for id in unique {
        query = query.bind(consumer).bind(id);
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|row| text(row, "event_id"))
        .collect())
}

/// The rows of `select` (a `SELECT ... FROM ...` without its `WHERE`) whose `column` is one
/// of `keys`, read in `tx` with one statement; `tail` follows the condition (`ORDER BY ...`,
/// `FOR UPDATE`). Keys are sorted and deduplicated first.
pub async fn rows_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    select: &str,
    column: &str,
    mut keys: Vec<&str>,
    tail: &str,
) -> sqlx::Result<Vec<AnyRow>> {
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("{select} WHERE {column} IN ({}){tail}", list(1, keys.len()));
    let sql = for_connection(tx, &sql);
    let mut query = sqlx::query(&sql);
    for key in keys {
        query = query.bind(key);
    }
    query.fetch_all(&mut **tx).await
}

/// A statement on the shop's database, as [`insert_rows`] hands it to its binder.
pub type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Writes `rows` in `tx` with `{head} VALUES (...), (...) {tail}` (`tail`: an `ON CONFLICT`
/// clause, or empty), `columns` values a row, which `bind` binds in order: one statement
/// per [`MAX_ROWS_PER_STATEMENT`] rows.
pub async fn insert_rows<T>(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    head: &str,
    tail: &str,
    columns: usize,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
) -> sqlx::Result<()> {
    for chunk in rows.chunks(MAX_ROWS_PER_STATEMENT) {
        let sql = format!("{head} VALUES {}{tail}", placeholders(chunk.len(), columns));
        let sql = for_connection(tx, &sql);
        let mut insert = sqlx::query(&sql);
        for row in chunk {
            insert = bind(insert, row);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// `row[column]` as a String.
pub(crate) fn text(row: &AnyRow, column: &str) -> String {
    row.try_get::<String, _>(column).unwrap_or_default()
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox of the version before `source`: its waiting rows get the service that
    /// writes their topic, so the right relay publishes them after the upgrade.
    #[tokio::test]
    async fn an_outbox_without_sources_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
        sqlx::any::install_default_drivers();
        let old = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TABLE outbox (event_id TEXT PRIMARY KEY, topic TEXT NOT NULL,
             record_key TEXT NOT NULL, payload TEXT NOT NULL, headers TEXT,
             created_at BIGINT NOT NULL)",
        )
        .execute(&old)
        .await
        .unwrap();
        for (id, topic) in [
            ("a", "user-events"),
            ("b", "order-events"),
            ("c", "payment-events-dlq"),
        ] {
            sqlx::query(
                "INSERT INTO outbox (event_id, topic, record_key, payload, created_at)
                 VALUES ($1, $2, 'k', '{}', 0)",
            )
            .bind(id)
            .bind(topic)
            .execute(&old)
            .await
            .unwrap();
        }
        old.close().await;

        let db = Database::connect(&url).await.unwrap();
        let rows = sqlx::query("SELECT event_id, source FROM outbox ORDER BY event_id")
            .fetch_all(db.pool())
            .await
            .unwrap();
        let sources: Vec<(String, String)> = rows
            .iter()
            .map(|row| (text(row, "event_id"), text(row, "source")))
            .collect();
        assert_eq!(
            sources,
            [
                ("a".to_owned(), "user".to_owned()),
                ("b".to_owned(), "order".to_owned()),
                ("c".to_owned(), "payment".to_owned()),
            ]
        );
        // Connecting again changes nothing.
        drop(db);
        Database::connect(&url).await.unwrap();
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://shop:secret@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(redact("sqlite://shop.db"), "sqlite://shop.db");
    }
}
