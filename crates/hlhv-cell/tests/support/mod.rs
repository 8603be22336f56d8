//! Helpers of the cell's integration tests: a Go-like test queen and a
//! local web app.

pub mod app;
pub mod queen;

use hlhv_cell::{CellConfig, HlhvPublication, HlhvPublisher};
use net::Secret;
use testkit::TestCert;

pub use app::LocalApp;
pub use queen::{PublicRequest, TestQueen};

/// The cell key the tests use.
pub const KEY: &str = "test-cell-key";

/// A certificate for the queen at 127.0.0.1.
pub fn queen_cert() -> TestCert {
    TestCert::generate(&["127.0.0.1", "localhost"])
}

/// A cell config publishing `to` as `demo.example/app/` through the queen at
/// `queen`, trusting `cert` by its pin.
pub fn config(queen: &TestQueen, cert: &TestCert, to: &str) -> CellConfig {
    let mut config = CellConfig::new(
        queen.addr.to_string(),
        "demo.example/app/",
        to,
        Secret::new(KEY),
    );
    config.tls.pin_sha256 = Some(cert.spki_sha256());
    config
}

/// A publisher from a config.
pub fn publisher(config: CellConfig) -> HlhvPublisher {
    HlhvPublisher::new(config).expect("a valid config")
}

/// A test queen, a local app and a cell publishing it with the defaults:
/// what most tests start from.
pub async fn published() -> (TestQueen, LocalApp, HlhvPublication) {
    let cert = queen_cert();
    let queen = TestQueen::start(&cert).await;
    let app = LocalApp::start().await;
    let publication = publisher(config(&queen, &cert, &app.url()))
        .connect_cell(None)
        .await
        .unwrap();
    (queen, app, publication)
}
