//! HTTP tests of the server on both backends, in the `spawn_app()` style: each test gets a
//! fresh database and its own application on a random port.

mod helpers;

mod admin;
mod bad_input;
mod batch;
mod edges;
mod legacy_routes;
mod observability;
mod order_api;
mod unreadable;
