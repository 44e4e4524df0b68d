//! Building blocks shared by every page.

pub mod chart;
pub mod environment;
pub mod landing;
pub mod layout;
pub mod live;
pub mod state;
pub mod theme;
pub mod time;
