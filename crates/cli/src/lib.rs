//! The `keyturn` program: configuration, start-up, and the command line.

pub mod commands;
pub mod config;
pub mod import;
pub mod mail;
pub mod output;
pub mod startup;
pub mod webhooks;
