//! A console visitor over plain HTTP: keeps its cookies, follows no redirects, and reads
//! each form's CSRF token from the page it came on.

use super::{TestApp, TestResponse};
use coachloop_core::identity::Email;
use coachloop_core::ids::AccountId;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use std::collections::BTreeMap;

/// Gives the administrator `email` of `account` a console password.
pub async fn admin_with_password(app: &TestApp, account: AccountId, email: &str, password: &str) {
    let hash = coachloop_server::console::password::hash(password).expect("hash");
    app.store
        .set_admin_password(account, &Email::parse(email).expect("email"), &hash)
        .await
        .expect("set the password");
}

pub struct Visitor {
    base: String,
    client: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, request: reqwest::RequestBuilder) -> TestResponse {
        let request = match self.cookies.is_empty() {
            true => request,
            false => request.header(COOKIE, self.cookie_header()),
        };
        let response = request.send().await.expect("the server answers");
        for set in response.headers().get_all(SET_COOKIE) {
            let text = set.to_str().expect("ascii cookie");
            let pair = text.split(';').next().unwrap_or_default();
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("read the body");
        TestResponse {
            status,
            headers,
            text,
        }
    }

    pub async fn get(&mut self, path: &str) -> TestResponse {
        let request = self.client.get(format!("{}{path}", self.base));
        self.read(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> TestResponse {
        let request = self.client.post(format!("{}{path}", self.base)).form(form);
        self.read(request).await
    }

    /// Signs in through the form; returns the answer to the form.
    pub async fn sign_in(&mut self, account: &str, email: &str, password: &str) -> TestResponse {
        let form = self.get("/console/sign-in").await;
        assert_eq!(form.status, 200, "{}", form.text);
        let token = csrf_of(&form.text);
        self.post(
            "/console/sign-in",
            &[
                ("csrf", &token),
                ("account", account),
                ("email", email),
                ("password", password),
                ("next", "/console/"),
            ],
        )
        .await
    }
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..html[at..].find('"').expect("closing quote") + at].to_owned()
}

/// Where a redirect goes.
pub fn location(response: &TestResponse) -> &str {
    response
        .headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}
