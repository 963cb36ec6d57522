//! The web console: a static single-page app compiled into the binary, served at `/` with its
//! assets under `/console/`. It speaks only to the management API under `/api/v1` with the API
//! key the person signs in with, so the API stays the one source of truth.
//!
//! The console registers exact paths only, so the routes registered after it (the management
//! API, ingest, operations) keep answering. Pages are addressed by the URL fragment
//! (`/#/webhooks/…`), which never reaches the server.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::problem::Problem;

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// The path it is served at.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

/// The page at `/`.
pub const INDEX: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../console/index.html"),
};

/// The assets under `/console/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/console/console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../console/console.css"),
    },
    Asset {
        path: "/console/console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../console/console.js"),
    },
    Asset {
        path: "/console/icon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../console/icon.svg"),
    },
];

/// Only this origin's scripts and styles, no framing, API calls to this origin only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Registers `/` and the assets (GET and HEAD; other methods answer 405 problem+json).
pub fn configure(cfg: &mut web::ServiceConfig) {
    for asset in std::iter::once(&INDEX).chain(ASSETS) {
        let asset = *asset;
        let serve = move || async move { response(asset) };
        cfg.service(
            web::resource(asset.path)
                .route(web::get().to(serve))
                .route(web::head().to(serve))
                .default_service(web::to(method_not_allowed))
                .wrap(actix_web::middleware::from_fn(
                    crate::head::limit_request_head,
                )),
        );
    }
}

fn response(asset: Asset) -> HttpResponse {
    let mut response = HttpResponse::Ok();
    response
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        ))
        // Revalidate every time: a new binary serves new assets at the same paths.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-cache")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
    if asset.path == INDEX.path {
        response
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ))
            .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")));
    }
    response.body(asset.body)
}

async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed("GET, HEAD")
}

#[cfg(test)]
mod tests {
    use actix_web::http::{Method, StatusCode};
    use actix_web::test::{TestRequest, call_service, init_service, read_body};
    use actix_web::{App, HttpResponse};

    use super::*;

    fn header<'a>(response: &'a actix_web::dev::ServiceResponse, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    #[actix_web::test]
    async fn serves_the_page_and_its_assets_with_their_content_types() {
        let app = init_service(App::new().configure(configure)).await;

        let response = call_service(&app, TestRequest::get().uri("/").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        assert!(header(&response, "content-security-policy").contains("frame-ancestors 'none'"));
        let page = read_body(response).await;
        let page = std::str::from_utf8(&page).unwrap();
        assert!(page.starts_with("<!doctype html>"), "{page}");
        for asset in ASSETS {
            assert!(
                page.contains(asset.path),
                "the page does not use {}",
                asset.path
            );
        }

        for (path, content_type) in [
            ("/console/console.css", "text/css; charset=utf-8"),
            ("/console/console.js", "text/javascript; charset=utf-8"),
            ("/console/icon.svg", "image/svg+xml"),
        ] {
            let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&response, "content-type"), content_type, "{path}");
            assert_eq!(header(&response, "x-content-type-options"), "nosniff");
            let body = read_body(response).await;
            let asset = ASSETS.iter().find(|a| a.path == path).unwrap();
            assert_eq!(&body[..], asset.body, "{path}");
            assert!(!body.is_empty(), "{path}");
        }

        let head = TestRequest::default()
            .method(Method::HEAD)
            .uri("/console/console.js")
            .to_request();
        assert_eq!(call_service(&app, head).await.status(), StatusCode::OK);

        let post = TestRequest::post().uri("/").to_request();
        let response = call_service(&app, post).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&response, "allow"), "GET, HEAD");
        assert_eq!(
            header(&response, "content-type"),
            "application/problem+json"
        );
    }

    #[actix_web::test]
    async fn leaves_other_paths_to_the_routes_registered_after_it() {
        let app = init_service(
            App::new()
                .configure(configure)
                .route(
                    "/api/v1/webhooks",
                    web::get().to(|| async { HttpResponse::Ok().body("api") }),
                )
                .default_service(web::to(|| async { HttpResponse::NotFound().finish() })),
        )
        .await;
        let response = call_service(
            &app,
            TestRequest::get().uri("/api/v1/webhooks").to_request(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&read_body(response).await[..], b"api");
        for path in [
            "/console/",
            "/console/missing.js",
            "/index.html",
            "/api/v1/nope",
        ] {
            let response = call_service(&app, TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
    }
}
