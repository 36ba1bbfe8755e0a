//! The `keyturn` program: configuration, start-up, and the command line.

pub mod config;
pub mod import;
pub mod mail;
pub mod startup;
