//! The official OpenAI Python SDK (`pip install openai`, installed by
//! `scripts/bootstrap --test`) works against the gateway unchanged: streaming and
//! non-streaming chat, streamed speech, a transcription of a real recording heard by the
//! offline PocketSphinx recogniser, listing and retrieving models, and the SDK's error
//! classes. The client is
//! `tests/openai_sdk/client.py`; this test starts the service and runs it.

mod openai_support;

use openai_support::{Options, Stack};
use pipeline::mock::reply_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_chats_speaks_transcribes_and_lists_models() {
    let stack = Stack::start(Options {
        local_stt: true,
        ..Options::default()
    })
    .await;
    let token = stack.signup("sdk").await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/openai_sdk");
    let output = tokio::process::Command::new("python3")
        .arg(format!("{dir}/client.py"))
        .arg(format!("{}/v1", stack.gateway))
        .arg(&token)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../media/testdata/hello.48k.wav"
        ))
        .arg(reply_for("what is the weather like today"))
        .output()
        .await
        .expect("run python3 (scripts/bootstrap --test installs the openai package)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the SDK client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    // Two completions, two speech requests (one refused before spending), one transcription.
    assert_eq!(stack.settled_usage(&token, "messages").await, 2);
    assert!(stack.settled_usage(&token, "voice_seconds").await >= 3 + 2);
}
