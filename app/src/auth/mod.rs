//! Who is asking: password hashing, the logged-in user extractors, CSRF tokens and
//! login throttling.

pub mod csrf;
pub mod password;
pub mod throttle;
mod user;

pub use user::{AdminUser, CurrentUser, SESSION_EPOCH, SESSION_SEEN, SESSION_USER};
