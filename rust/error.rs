//! One error type for the core: a message meant for the user, and its kind. The Python
//! bindings turn `Value` into ValueError and `Memory` into MemoryError.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: shapes, values, sizes no allocation could hold.
    Value,
    /// The allocator refused a buffer (out of memory).
    Memory,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Error(pub String, pub ErrorKind);

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into(), ErrorKind::Value)
    }
    pub fn memory(msg: impl Into<String>) -> Self {
        Error(msg.into(), ErrorKind::Memory)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// `bail!("...", args)` returns an `Error` from the current function.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => { return Err($crate::error::Error::new(format!($($arg)*))) };
}
