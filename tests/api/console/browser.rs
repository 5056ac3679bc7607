//! A headless Chromium for the console's tests, driven over WebDriver by `chromedriver` with plain
//! HTTP; each page it shows can be saved as a screenshot under `target/ui-screenshots/`.

use std::{path::PathBuf, process::Stdio, time::Duration};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde_json::{json, Value};

use crate::helpers::{eventually, TestApp};

/// A headless Chromium, driven over WebDriver with plain HTTP.
pub(super) struct Browser {
    driver: tokio::process::Child,
    base: String,
    http: reqwest::Client,
    shots: PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether a WebDriver error says the page was between two states rather than that the test
/// asked for something wrong: the element went away or is not drawn yet (W3C WebDriver error
/// codes), a navigation replaced the page under the command, or the page has no layout yet
/// (Chromium refuses a screenshot of a page 0 pixels wide).
fn page_moved(answer: &Value) -> bool {
    let code = answer["value"]["error"].as_str();
    let message = answer["value"]["message"].as_str().unwrap_or_default();
    matches!(
        code,
        Some("stale element reference" | "no such element" | "element not interactable")
    ) || [
        "aborted by navigation",
        "Not attached to an active page",
        "Cannot take screenshot with 0",
    ]
    .iter()
    .any(|transient| message.contains(transient))
}

impl Browser {
    pub(super) async fn start(test: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (apt-get install chromium chromium-driver)");
        let http = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        eventually("chromedriver to answer", Duration::from_secs(10), || async {
            http.get(format!("{root}/status")).send().await.is_ok()
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1300"]}}}});
        let session: Value = http
            .post(format!("{root}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"));
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            driver,
            base: format!("{root}/session/{id}"),
            http,
            shots: shots.join(test),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|answer| panic!("{path}: {answer}"))
    }

    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        match answer["value"].get("error") {
            None => Ok(answer["value"].clone()),
            Some(_) => Err(answer),
        }
    }

    pub(super) async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// Finds `css` and calls each `(action, body)` on it in turn (`/element/{id}{action}`),
    /// starting again from the search while the page replaces the element or has not drawn it
    /// yet (the incident list redraws itself every few seconds; a click's navigation may still
    /// be loading), for up to 15 s.
    async fn on_element(&self, css: &str, actions: &[(&str, Value)]) -> Value {
        let what = format!("{css} on the page");
        eventually(&what, Duration::from_secs(15), || async {
            match self.try_on_element(css, actions).await {
                Err(answer) if !page_moved(&answer) => panic!("{css}: {answer}"),
                answer => answer,
            }
        })
        .await
    }

    /// Finds `css` and calls each `(action, body)` on it once: the last answer, or the first
    /// error.
    async fn try_on_element(&self, css: &str, actions: &[(&str, Value)]) -> Result<Value, Value> {
        let search = json!({"using": "css selector", "value": css});
        let found = self
            .try_call(reqwest::Method::POST, "/element", Some(search))
            .await?;
        let element = found[ELEMENT].as_str().unwrap_or_default().to_owned();
        let mut last = found;
        for (action, body) in actions {
            let path = format!("/element/{element}{action}");
            last = self
                .try_call(reqwest::Method::POST, &path, Some(body.clone()))
                .await?;
        }
        Ok(last)
    }

    pub(super) async fn count(&self, css: &str) -> usize {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found.as_array().unwrap().len()
    }

    pub(super) async fn type_into(&self, css: &str, text: &str) {
        let actions = [("/clear", json!({})), ("/value", json!({"text": text}))];
        self.on_element(css, &actions).await;
    }

    pub(super) async fn click(&self, css: &str) {
        self.on_element(css, &[("/click", json!({}))]).await;
    }

    /// The page's text; tried again while a page that replaced the last one loads.
    pub(super) async fn text(&self) -> String {
        eventually("the page to settle", Duration::from_secs(5), || self.try_text()).await
    }

    async fn try_text(&self) -> Result<String, Value> {
        let search = json!({"using": "css selector", "value": "body"});
        let body = self
            .try_call(reqwest::Method::POST, "/element", Some(search))
            .await?;
        let path = format!("/element/{}/text", body[ELEMENT].as_str().unwrap());
        let text = self.try_call(reqwest::Method::GET, &path, None).await?;
        Ok(text.as_str().unwrap().to_owned())
    }

    /// The page's text once `ready` holds for it (a click's navigation may still be loading),
    /// within 15 s.
    pub(super) async fn text_when(&self, ready: impl Fn(&str) -> bool) -> String {
        eventually(
            "the page to show what the test waits for",
            Duration::from_secs(15),
            || async {
                let text = self.text().await;
                if ready(&text) {
                    Ok(text)
                } else {
                    Err(text)
                }
            },
        )
        .await
    }

    /// Waits until the page's URL ends with `suffix`, within 15 s (a click's navigation may still
    /// be on its way).
    pub(super) async fn reaches(&self, suffix: &str) {
        let what = format!("the page's URL to end with {suffix}");
        eventually(&what, Duration::from_secs(15), || async {
            let url = self.url().await;
            if url.ends_with(suffix) {
                Ok(())
            } else {
                Err(url)
            }
        })
        .await
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(super) async fn resize(&self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// The whole page, not only the window (Chromium's DevTools command through chromedriver).
    /// Tried again for up to 5 s while the page is between two states (a navigation or a resize
    /// not yet laid out).
    pub(super) async fn screenshot(&self, name: &str) {
        let params = json!({"format": "png", "captureBeyondViewport": true});
        let command = json!({"cmd": "Page.captureScreenshot", "params": params});
        let png = eventually(
            "the page to be laid out for a screenshot",
            Duration::from_secs(5),
            || async {
                match self
                    .try_call(reqwest::Method::POST, "/goog/cdp/execute", Some(command.clone()))
                    .await
                {
                    Err(answer) if !page_moved(&answer) => panic!("screenshot {name}: {answer}"),
                    answer => answer,
                }
            },
        )
        .await;
        let png = &png["data"];
        let bytes = STANDARD.decode(png.as_str().unwrap()).unwrap();
        std::fs::write(format!("{}-{name}.png", self.shots.display()), bytes).unwrap();
    }

    pub(super) async fn sign_in(&self, app: &TestApp, token: &str) {
        self.go(&format!("{}/ui/login", app.address)).await;
        self.type_into("#token", token).await;
        self.click("form.login button").await;
    }

    pub(super) async fn quit(mut self) {
        let _ = self.http.delete(&self.base).send().await;
        let _ = self.driver.kill().await;
    }
}
