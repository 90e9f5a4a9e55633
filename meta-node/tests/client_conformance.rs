//! The in-process metadata client passes the `MetaClient` conformance suite, and keeps passing
//! it over a node restarted on the same directory.

use cairn_meta_client::MetaClient;
use cairn_meta_node::{LocalMetaClient, MetaNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_client_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    {
        let client = LocalMetaClient::new(MetaNode::open_single(dir.path()).await.unwrap());
        cairn_meta_client::conformance::run(&client).await;
        client.shutdown().await;
        let refused = client.propose(cairn_meta::Command::GcBegin).await.unwrap_err();
        assert!(
            refused.is_retryable(),
            "a stopped node refuses writes as retryable: {refused}"
        );
    }
    let client = LocalMetaClient::new(MetaNode::open_single(dir.path()).await.unwrap());
    assert!(
        client.bucket("conf").await.unwrap().is_some(),
        "state survives a restart"
    );
    client.shutdown().await;
}

const SECRET: &str = "test-cluster-secret";

/// The meta-node's gRPC metadata API, served on an OS-chosen port, for the test's lifetime.
async fn serve(client: LocalMetaClient) -> (String, tokio::task::JoinHandle<()>) {
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .unwrap()
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().unwrap().to_string();
    let service = cairn_meta_client::grpc::MetadataService::new(std::sync::Arc::new(client), SECRET);
    let task = tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_client_passes_the_conformance_suite() {
    use cairn_meta_client::grpc::GrpcMetaClient;
    let dir = tempfile::tempdir().unwrap();
    let local = LocalMetaClient::new(MetaNode::open_single(dir.path()).await.unwrap());
    let (addr, server) = serve(local.clone()).await;
    // Without the cluster's secret, nothing is answered.
    let stranger = GrpcMetaClient::new(&[&addr], std::time::Duration::from_secs(5), "wrong").unwrap();
    let refused = stranger.access_keys().await.unwrap_err();
    assert!(
        matches!(&refused, cairn_meta_client::MetaClientError::Refused(m) if m.contains("cluster secret")),
        "{refused}"
    );
    assert!(!refused.is_retryable());
    let client = GrpcMetaClient::new(&[&addr], std::time::Duration::from_secs(5), SECRET).unwrap();
    assert!(!client.is_ready(), "not ready before it has reached the node");
    assert!(client.check_ready().await.unwrap());
    cairn_meta_client::conformance::run(&client).await;
    // A refused command keeps its kind across the wire.
    let refused = client
        .propose(cairn_meta::Command::DeleteBucket { name: "nope".into() })
        .await
        .unwrap();
    assert_eq!(
        refused,
        cairn_meta::Response::Failed(cairn_meta::MetaError::NoSuchBucket)
    );
    // The Raft node stopped behind the service: writes fail as retryable, across the wire,
    // and the client no longer says it is ready.
    local.shutdown().await;
    let gone = client.propose(cairn_meta::Command::GcBegin).await.unwrap_err();
    assert!(
        matches!(gone, cairn_meta_client::MetaClientError::Unavailable(_)),
        "{gone}"
    );
    assert!(!client.is_ready());
    server.abort();
}

#[tokio::test]
async fn a_client_of_an_address_nobody_listens_on_gets_retryable_errors() {
    use cairn_meta_client::grpc::GrpcMetaClient;
    // Bound and closed at once: nothing listens there now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = GrpcMetaClient::new(&[&addr.to_string()], std::time::Duration::from_secs(2), SECRET).unwrap();
    let e = client.buckets().await.unwrap_err();
    assert!(matches!(e, cairn_meta_client::MetaClientError::Unavailable(_)), "{e}");
}
