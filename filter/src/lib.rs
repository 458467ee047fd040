//! mcp-oauth-guard: a proxy-wasm filter for Envoy that turns OAuth providers' "client does
//! not exist" answers into the RFC 6749 `401 invalid_client` that makes MCP clients register
//! again, and leaves every other answer alone.
//!
//! The crate is a host-independent core (every module but `adapter`, plain Rust, tested
//! natively) and a thin proxy-wasm adapter, compiled only for `wasm32`, that moves headers and
//! bodies between Envoy and the core.

pub mod classify;
pub mod endpoint;
pub mod exchange;
pub mod header_pairs;
pub mod identity;
pub mod json_doc;
mod json_error;
pub mod lifecycle;
pub mod policy;
pub mod presets;
pub mod provider_error;
pub mod reply;
pub mod request;
pub mod resource_indicator;
pub mod resource_metadata;
pub mod server_metadata;
pub mod url_identity;

#[cfg(target_arch = "wasm32")]
mod adapter;
