//! The real-browser harness: headless Chromium (Debian's `chromium`) driven through
//! chromedriver (Debian's `chromium-driver`) over WebDriver with `fantoccini`.
//!
//! `scripts/test` starts chromedriver on a free port and hands its URL to the tests as
//! `TEST_WEBDRIVER_URL`; without it [`Browser::start`] panics, so browser tests fail rather than
//! pass unseen. `TEST_CHROMIUM_BIN` overrides the browser binary (default `/usr/bin/chromium`).
//! With `TEST_SCREENSHOTS=<dir>` set (relative to the workspace root, e.g. `docs/screenshots`),
//! [`Browser::screenshot`] writes PNGs there.
//!
//! ```no_run
//! # async fn example(app: huitong_tests::TestApp) {
//! use fantoccini::Locator;
//! let browser = huitong_tests::browser::Browser::start().await;
//! browser.goto(&format!("{}/console/login", app.address)).await.unwrap();
//! let heading = browser.find(Locator::Css("h1")).await.unwrap().text().await.unwrap();
//! browser.screenshot("console-login").await;
//! browser.close().await;
//! # }
//! ```

use std::ops::Deref;
use std::path::PathBuf;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// The flags Chromium needs on a CI machine: headless, no sandbox (root in a container), no
/// GPU, and nothing that phones home or waits on the network.
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2400",
    "--lang=zh-CN",
];

/// A fresh headless Chromium session with its own profile directory; derefs to the
/// [`fantoccini::Client`] that drives it.
pub struct Browser {
    client: Client,
    /// Removed when the browser is dropped.
    _profile: tempfile::TempDir,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Browser {
    /// Starts a browser session on the chromedriver at `TEST_WEBDRIVER_URL`; panics, saying how
    /// to get one, when it is unset or unreachable.
    pub async fn start() -> Self {
        let url = std::env::var("TEST_WEBDRIVER_URL").expect(
            "TEST_WEBDRIVER_URL is not set: run ./scripts/test, which installs chromium and chromium-driver \
             and starts chromedriver (or start `chromedriver --port=9515` and set TEST_WEBDRIVER_URL=http://127.0.0.1:9515)",
        );
        let binary = std::env::var("TEST_CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let profile = tempfile::tempdir().expect("a temp dir for the browser profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("a downloads dir");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": args,
                // Downloads land in the profile, without asking.
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot start a Chromium session through chromedriver at {url}: {e}"));
        Self {
            client,
            _profile: profile,
        }
    }

    /// Where the browser saves what it downloads.
    pub fn downloads(&self) -> PathBuf {
        self._profile.path().join("downloads")
    }

    /// Writes the page as it is now to `<TEST_SCREENSHOTS>/<name>.png` when that variable is
    /// set; does nothing otherwise.
    pub async fn screenshot(&self, name: &str) {
        let Ok(dir) = std::env::var("TEST_SCREENSHOTS") else {
            return;
        };
        let mut dir = PathBuf::from(dir);
        if dir.is_relative() {
            // Tests run in the tests crate's directory; the workspace root is its parent.
            dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        }
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.client.screenshot().await.expect("screenshot taken");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// The text of the first element `css` matches, waiting for it to appear; panics, naming
    /// the selector, when none does.
    pub async fn text(&self, css: &str) -> String {
        self.wait()
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"))
            .text()
            .await
            .expect("element text")
    }

    /// How many elements `css` matches now.
    pub async fn count(&self, css: &str) -> usize {
        self.find_all(Locator::Css(css)).await.expect("query").len()
    }

    /// Clicks the element `target` finds. A click does not wait for the page it leads to: wait
    /// for an element of that page next.
    pub async fn click(&self, target: Locator<'_>) {
        self.find(target)
            .await
            .unwrap_or_else(|e| panic!("nothing to click: {e}"))
            .click()
            .await
            .expect("clicked");
    }

    /// Ends the session (the browser quits).
    pub async fn close(self) {
        self.client.close().await.expect("browser session closed");
    }
}
