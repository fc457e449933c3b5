//! Who is on the other end: JWT verification, roles, and dev-token minting (CONTRACT §5).
//!
//! On the message path this runs at the handshake (query `token` or `Authorization`
//! header) or on an `auth` request; its [`Identity`] is what `permissions` checks.

mod jwt;

pub use jwt::{AuthError, Authenticator, Claims};

use globset::GlobMatcher;

/// The role of connections without a token.
pub const ANONYMOUS_ROLE: &str = "anonymous";

/// Who a connection is and what its token grants.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's `sub`; `None` for anonymous connections.
    pub user: Option<String>,
    /// The token's `role`/`roles` (permissions are their union).
    pub roles: Vec<String>,
    /// The token's `exp` (seconds since the Unix epoch).
    pub expires_at: Option<u64>,
    /// Extra topics (globs) the token's `channels` claim allows subscribing to.
    pub channels: Vec<GlobMatcher>,
}

impl Identity {
    /// An anonymous connection.
    pub fn anonymous() -> Identity {
        Identity {
            user: None,
            roles: vec![ANONYMOUS_ROLE.to_owned()],
            expires_at: None,
            channels: Vec::new(),
        }
    }

    /// An identity with the given user and roles (tests and the HTTP API).
    pub fn with_roles(user: Option<&str>, roles: Vec<String>) -> Identity {
        Identity {
            user: user.map(str::to_owned),
            roles,
            expires_at: None,
            channels: Vec::new(),
        }
    }

    /// The `role` field of `connection.established`: the first role, if any.
    pub fn primary_role(&self) -> Option<&str> {
        self.roles.first().map(String::as_str)
    }

    /// Whether any of the roles is `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
