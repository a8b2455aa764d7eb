//! One-shot calls against small scripts: an answer over the cap is refused, not buffered.

use std::os::unix::fs::PermissionsExt;

use super::*;

#[tokio::test]
async fn an_endless_answer_is_cut_at_the_cap_before_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zpool");
    std::fs::write(&path, "#!/bin/sh\nyes 'pool\t1\t2'\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The deadline is far away: the cap, not the deadline, ends the call.
    let err = run(&path, &["list"], Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, ZpoolError::TooLarge { .. }), "{err}");
    assert!(
        err.to_string().contains("printed more than 16 MiB"),
        "{err}"
    );
}
