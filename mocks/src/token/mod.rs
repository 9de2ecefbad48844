//! Access tokens: the run's signing key, the claim set, minting and verification.

pub mod claims;
pub mod mint;
pub mod signer;
pub mod verify;

pub use claims::AccessTokenClaims;
pub use mint::{IssuedToken, TokenRequest, TokenSubject, TokenVersion};
pub use signer::TokenSigner;
pub use verify::TokenRejection;
