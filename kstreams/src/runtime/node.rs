//! The typed wiring between processor instances inside a task.
//!
//! The topology stores type-erased factories; when a task is built, each node is instantiated
//! after its children, and gets typed handles ([`Port`]s) to them, so forwarding a record is a
//! direct, typed call with no serialization or boxing between processors.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::{BoxError, StreamsError};
use crate::processor::{Processor, ProcessorContext, Punctuation, Record};
use crate::runtime::task::TaskContext;

/// The input side of a node that takes records of `(K, V)`.
pub(crate) trait Input<K, V> {
    fn process(&mut self, task: &mut TaskContext, record: Record<K, V>) -> Result<(), BoxError>;
}

/// A shared handle to a node's input. Nodes with several parents (merge) are shared.
pub(crate) type Port<K, V> = Rc<RefCell<dyn Input<K, V>>>;

/// The downstream nodes of one node, in the order they were added.
pub(crate) struct Children<K, V> {
    pub ports: Vec<(Arc<str>, Port<K, V>)>,
}

impl<K: Clone, V: Clone> Children<K, V> {
    pub(crate) fn forward(
        &self,
        task: &mut TaskContext,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        match self.ports.split_last() {
            None => Ok(()),
            Some(((_, last), rest)) => {
                for (_, port) in rest {
                    port.borrow_mut().process(task, record.clone())?;
                }
                last.borrow_mut().process(task, record)
            }
        }
    }

    pub(crate) fn forward_to(
        &self,
        task: &mut TaskContext,
        child: &str,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        let port = self
            .ports
            .iter()
            .find(|(name, _)| &**name == child)
            .ok_or_else(|| format!("no downstream processor named `{child}`"))?;
        port.1.borrow_mut().process(task, record)
    }

    pub(crate) fn forward_to_index(
        &self,
        task: &mut TaskContext,
        index: usize,
        record: Record<K, V>,
    ) -> Result<(), BoxError> {
        match self.ports.get(index) {
            Some((_, port)) => port.borrow_mut().process(task, record),
            None => Ok(()),
        }
    }
}

/// Lifecycle calls the task makes on a node outside of record processing.
pub(crate) trait NodeOps {
    fn init(&mut self, task: &mut TaskContext) -> Result<(), StreamsError>;
    fn punctuate(
        &mut self,
        task: &mut TaskContext,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError>;
    /// Forwards what the processor holds back; called at every commit.
    fn flush(&mut self, task: &mut TaskContext) -> Result<(), BoxError>;
    fn close(&mut self);
}

/// A source node: turns the task's current raw record into typed records.
pub(crate) trait SourceInput {
    fn process_raw(
        &mut self,
        task: &mut TaskContext,
        raw: &crate::runtime::task::ConsumerRecord,
    ) -> Result<(), BoxError>;
}

/// A processor with its children: the node type of every DSL operator and user processor.
pub(crate) struct ProcessorNode<P, KIn, VIn, KOut, VOut> {
    pub processor: P,
    pub children: Children<KOut, VOut>,
    pub node: usize,
    pub name: Arc<str>,
    pub _input: PhantomData<fn(KIn, VIn)>,
}

impl<P, KIn, VIn, KOut, VOut> ProcessorNode<P, KIn, VIn, KOut, VOut> {
    /// Makes one call of the processor with its context; an error names the processor.
    fn call(
        &mut self,
        task: &mut TaskContext,
        call: impl FnOnce(&mut P, &mut ProcessorContext<'_, KOut, VOut>) -> Result<(), BoxError>,
    ) -> Result<(), StreamsError> {
        let mut ctx = ProcessorContext {
            task,
            children: &self.children,
            node: self.node,
            name: &self.name,
        };
        call(&mut self.processor, &mut ctx).map_err(|e| StreamsError::from_processor(&self.name, e))
    }
}

impl<P, KIn, VIn, KOut, VOut> Input<KIn, VIn> for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn process(
        &mut self,
        task: &mut TaskContext,
        record: Record<KIn, VIn>,
    ) -> Result<(), BoxError> {
        self.call(task, |p, ctx| p.process(ctx, record))
            .map_err(|e| Box::new(e) as BoxError)
    }
}

impl<P, KIn, VIn, KOut, VOut> NodeOps for ProcessorNode<P, KIn, VIn, KOut, VOut>
where
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn init(&mut self, task: &mut TaskContext) -> Result<(), StreamsError> {
        self.call(task, |p, ctx| p.init(ctx))
    }

    fn punctuate(
        &mut self,
        task: &mut TaskContext,
        punctuation: Punctuation,
    ) -> Result<(), StreamsError> {
        self.call(task, |p, ctx| p.punctuate(ctx, punctuation))
    }

    fn flush(&mut self, task: &mut TaskContext) -> Result<(), BoxError> {
        self.call(task, |p, ctx| p.flush(ctx))
            .map_err(|e| Box::new(e) as BoxError)
    }

    fn close(&mut self) {
        self.processor.close()
    }
}
