//! Real-browser tests: headless Chromium through chromedriver (see `huitong_tests::browser`),
//! against the real server with the demo's data. One module per area.

mod console;
mod portal;
