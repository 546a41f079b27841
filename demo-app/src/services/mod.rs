//! The shop's services, one module each.

pub mod audit;
pub mod catalog;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod order_writer;
pub mod payment;
pub mod payment_holds;
pub mod shipping;
pub mod user;
