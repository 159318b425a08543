//! Private mode: the key owner's files, so that the cluster that evaluates never holds the
//! secret key. A key folder ([`folder`]) is made on the owner's machine; the evaluating side
//! opens only its public half ([`ServerKeys`]), the owner the secret half ([`OwnerKeys`]).

pub mod folder;
pub mod inputs;

pub use folder::{create, KeyRequest, KeysError, Manifest, OwnerKeys, ServerKeys};
