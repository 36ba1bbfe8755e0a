//! The `keyturn` program: configuration, start-up, and the command line.

pub mod config;
pub mod mail;
pub mod startup;
