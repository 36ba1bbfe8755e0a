//! Integration tests: each starts the real server on a random port and talks HTTP to it, on
//! SQLite always and on PostgreSQL too when `KEYTURN_TEST_DATABASE_URL` is set.

#[macro_use]
mod helpers;

mod access;
mod activations;
mod backup;
mod bad_input;
mod branding;
mod catalog;
mod cli;
mod client_sdk;
mod concurrency;
mod console;
mod console_money;
mod console_owner;
mod console_sales;
mod console_setup;
mod console_webhooks;
mod convergence;
mod cryptolens;
mod cryptolens_data;
mod cryptolens_keys;
mod cryptolens_semantics;
mod exposure;
mod faults;
mod forms;
mod hot_path;
mod import;
mod license_urls;
mod licenses;
mod localstripe;
mod mail;
mod money;
mod ops;
mod payloads;
mod portal;
mod portal_billing;
mod portal_journey;
mod portal_self;
mod rsa_import;
mod stores;
mod stripe;
mod tls;
mod tokens;
mod webhooks_out;
