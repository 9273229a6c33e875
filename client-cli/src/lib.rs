//! hearth-cli: the async [`Client`] for Hearth servers — connect with either codec,
//! send typed requests and await their replies, read the event stream, and
//! [`Client::resume`] after a disconnect without a gap — plus the `hearth` binary
//! built on it. Tests use this same client.

pub mod account;
mod client;
pub mod profile;
pub mod render;
pub mod tui;
pub mod words;

pub use client::{Client, ClientError, CloseInfo, Options, tls_connector};
