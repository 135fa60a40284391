//! otpflow (skeleton)
pub mod phone;
pub use phone::{PhoneError, PhoneNumber, PhonePolicy};
