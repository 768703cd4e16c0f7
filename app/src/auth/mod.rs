//! Who is asking: password hashing, the logged-in user extractors, CSRF tokens and
//! login throttling.

pub mod csrf;
pub mod password;
pub mod throttle;
mod user;

pub use user::{
    refresh_every, AdminUser, CurrentUser, SESSION_ADDRESS, SESSION_AGENT, SESSION_COOKIE,
    SESSION_EPOCH, SESSION_HANDLE, SESSION_SEEN, SESSION_SINCE, SESSION_USER,
};
