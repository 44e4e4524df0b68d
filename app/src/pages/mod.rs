//! One module per page; each owns its server functions and components.

pub mod activity;
pub mod builds;
pub mod deployment;
pub mod deployments;
pub mod domains;
pub mod environment;
pub mod environments;
pub mod jobs;
pub mod members;
pub mod not_found;
pub mod notifications;
pub mod overview;
pub mod previews;
pub mod projects;
pub mod service;
pub mod services;
pub mod settings;
pub mod spec;
pub mod status;
