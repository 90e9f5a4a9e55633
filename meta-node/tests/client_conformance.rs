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
