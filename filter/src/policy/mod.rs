//! The operator's policy: parsed strictly ([`document`], [`load`]), then compiled into the
//! form the request path uses ([`Policy`]), so requests never re-read YAML.

mod compile;
pub mod document;
pub mod error;
pub mod load;
pub mod resources;
pub mod yaml;

pub use compile::{LoadContext, Policy, Provider, RewriteSettings};
pub use error::PolicyError;
