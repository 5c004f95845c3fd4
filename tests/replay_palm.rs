//! Fixture replay (see tests/common/replay.rs) for the deprecated `palm` provider.

#[path = "it/common/mod.rs"]
mod common;

use common::replay::{Case, replay};

const PALM: (&str, &str) = ("palm_api_base", "https://generativelanguage.googleapis.com/v1beta3/models/");

macro_rules! replay_tests {
    ($($test:ident => $case:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            replay($case).await;
        }
    )*};
}

replay_tests! {
    palm_chat => Case::new("palm-chat", PALM);
    palm_completions => Case::new("palm-completions", PALM);
    palm_embeddings => Case::new("palm-embeddings", PALM);
}
