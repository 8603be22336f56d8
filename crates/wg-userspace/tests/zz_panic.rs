use testkit::wireguard::WireguardGo;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_with_wg() {
    let key = wg_userspace::PrivateKey::generate();
    let wg = WireguardGo::start(&key.to_base64(), "10.88.0.1/24").unwrap();
    println!("ns {}", wg.namespace());
    let h = tokio::spawn(async { 1 });
    h.await.unwrap();
    panic!("boom");
}
