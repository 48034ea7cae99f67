//! The interoperability peer against itself: two (or three) peers on loopback federate
//! through activitypub_federation only, which shows the fixture works before it is pointed
//! at the bridge.

use std::time::Duration;

use integration_tests::peer::{
    ActivityKind, FollowState, PeerOptions, ReceivedActivity, RemotePeer, Tamper,
};
use serde_json::{Value, json};
use url::Url;

const WAIT: Duration = Duration::from_secs(10);

fn is(kind: ActivityKind, id: &Url) -> impl Fn(&ReceivedActivity) -> bool {
    move |a| a.kind == kind && &a.id == id
}

fn about(kind: ActivityKind, object: &Url) -> impl Fn(&ReceivedActivity) -> bool {
    move |a| a.kind == kind && a.object_id().as_ref() == Some(object)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_federate_through_the_crate() {
    let a = RemotePeer::start("alice").await;
    let b = RemotePeer::start("bob").await;

    let view = b
        .resolve(&format!("@{}", a.handle()))
        .await
        .expect("B resolves A");
    assert_eq!(view.id, a.actor_id());
    assert_eq!(view.preferred_username, "alice");
    assert_eq!(view.inbox, a.inbox());
    assert_eq!(view.shared_inbox, Some(a.shared_inbox()));
    assert_eq!(view.public_key_pem, a.public_key_pem());
    assert_eq!(view.public_key_id, format!("{}#main-key", a.actor_id()));
    assert_eq!(a.actor_fetches(), 1);

    let follow_id = b.follow(&a.actor_id()).await.expect("Follow delivered");
    let follow = a
        .wait_for(is(ActivityKind::Follow, &follow_id), WAIT)
        .await
        .expect("A received the Follow");
    assert_eq!(follow.actor, b.actor_id());
    assert_eq!(follow.object, json!(a.actor_id()));
    let accept = b
        .wait_for(|x| x.kind == ActivityKind::Accept, WAIT)
        .await
        .expect("B received A's Accept");
    assert_eq!(accept.actor, a.actor_id());
    assert_eq!(accept.object["id"], json!(follow_id));
    assert_eq!(accept.object["type"], "Follow");
    assert_eq!(b.follow_state(&follow_id), Some(FollowState::Accepted));
    assert_eq!(a.followers(), vec![b.actor_id()]);

    let note = a.post("hello fediverse").await.expect("Create delivered");
    let create = b
        .wait_for(about(ActivityKind::Create, &note), WAIT)
        .await
        .expect("B received the Create");
    assert_eq!(create.object["content"], "<p>hello fediverse</p>");
    assert_eq!(create.object["attributedTo"], json!(a.actor_id()));
    let fetched = b.fetch_object(&note).await.expect("signed GET of the note");
    assert_eq!(fetched["id"], json!(note));

    let update_id = a
        .edit(&note, "hello again")
        .await
        .expect("Update delivered");
    let update = b
        .wait_for(is(ActivityKind::Update, &update_id), WAIT)
        .await
        .expect("B received the Update");
    assert_eq!(update.object["content"], "<p>hello again</p>");

    let like_id = b.like(&note, &a.actor_id()).await.expect("Like delivered");
    let like = a
        .wait_for(is(ActivityKind::Like, &like_id), WAIT)
        .await
        .expect("A received the Like");
    assert_eq!(like.object_id(), Some(note.clone()));

    let reply = b
        .reply(&note, &a.actor_id(), "nice post")
        .await
        .expect("reply delivered");
    let reply_create = a
        .wait_for(about(ActivityKind::Create, &reply), WAIT)
        .await
        .expect("A received the reply");
    assert_eq!(reply_create.object["inReplyTo"], json!(note));
    assert_eq!(reply_create.object["tag"][0]["type"], "Mention");
    assert_eq!(reply_create.object["tag"][0]["href"], json!(a.actor_id()));
    assert!(
        reply_create.object["cc"]
            .as_array()
            .expect("cc list")
            .contains(&json!(a.actor_id()))
    );

    let unlike_id = b
        .unlike(&like_id, &note, &a.actor_id())
        .await
        .expect("Undo(Like) delivered");
    let unlike = a
        .wait_for(is(ActivityKind::Undo, &unlike_id), WAIT)
        .await
        .expect("A received Undo(Like)");
    assert_eq!(unlike.object["type"], "Like");

    let delete_id = a.delete(&note).await.expect("Delete delivered");
    let delete = b
        .wait_for(is(ActivityKind::Delete, &delete_id), WAIT)
        .await
        .expect("B received the Delete");
    assert_eq!(delete.object["type"], "Tombstone");
    assert!(
        b.fetch_object(&note).await.is_err(),
        "a deleted note answers 410"
    );

    let unfollow_id = b
        .unfollow(&a.actor_id(), &follow_id)
        .await
        .expect("Undo(Follow) delivered");
    a.wait_for(is(ActivityKind::Undo, &unfollow_id), WAIT)
        .await
        .expect("A received Undo(Follow)");
    assert!(a.followers().is_empty());
    assert_eq!(b.follow_state(&follow_id), Some(FollowState::Undone));

    assert_eq!(a.rejections(), Vec::<String>::new());
    assert_eq!(b.rejections(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_refuses_unsigned_tampered_and_impersonating_requests() {
    let a = RemotePeer::start("alice").await;
    let b = RemotePeer::start("bob").await;
    let c = RemotePeer::start("carol").await;
    let like = |actor: &Url, n: u32| {
        json!({
            "id": format!("{actor}#likes/{n}"),
            "type": "Like",
            "actor": actor,
            "object": a.actor_id(),
        })
    };

    let unsigned = b
        .deliver_unsigned(&a.inbox(), &like(&b.actor_id(), 1))
        .await
        .expect("request answered");
    assert_eq!(unsigned, 401);
    assert_eq!(a.rejected_count(), 1);

    let mut other_object = like(&b.actor_id(), 2);
    other_object["object"] = json!(c.actor_id());
    let tampered = b
        .deliver_tampered(
            &a.inbox(),
            &like(&b.actor_id(), 2),
            &other_object,
            Tamper::Body,
        )
        .await
        .expect("request answered");
    assert_eq!(tampered, 401);
    assert_eq!(a.rejected_count(), 2);

    let re_digested = b
        .deliver_tampered(
            &a.inbox(),
            &like(&b.actor_id(), 2),
            &other_object,
            Tamper::BodyAndDigest,
        )
        .await
        .expect("request answered");
    assert_eq!(
        re_digested,
        401,
        "the signature covers the Digest: {:?}",
        a.rejections()
    );
    assert_eq!(a.rejected_count(), 3);

    // B signs an activity that claims to be C's: the crate checks it against C's key.
    let impersonation = b
        .deliver_json(&a.inbox(), like(&c.actor_id(), 3))
        .await
        .expect("request answered");
    assert_eq!(impersonation, 401);
    assert_eq!(a.rejected_count(), 4);

    assert!(a.received().is_empty(), "{:?}", a.received());

    let honest = b
        .deliver_json(&a.inbox(), like(&b.actor_id(), 4))
        .await
        .expect("request answered");
    assert_eq!(honest, 202, "{:?}", a.rejections());
    assert_eq!(a.received().len(), 1);
    assert_eq!(a.received()[0].actor, b.actor_id());
    assert_eq!(a.rejected_count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draft_cavage_compatible_signatures_verify_too() {
    let a = RemotePeer::start("alice").await;
    let compat = RemotePeer::start_with(
        "dora",
        PeerOptions {
            http_signature_compat: true,
            ..PeerOptions::default()
        },
    )
    .await
    .expect("compat peer starts");

    let follow_id = compat
        .follow(&a.actor_id())
        .await
        .expect("Follow delivered");
    a.wait_for(is(ActivityKind::Follow, &follow_id), WAIT)
        .await
        .expect("A verified the compat signature");
    compat
        .wait_for(|x| x.kind == ActivityKind::Accept, WAIT)
        .await
        .expect("compat peer verified A's Accept");
    assert_eq!(compat.follow_state(&follow_id), Some(FollowState::Accepted));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_block_profile_update_and_move_are_verified() {
    let a = RemotePeer::start("alice").await;
    let b = RemotePeer::start_with(
        "bob",
        PeerOptions {
            auto_accept: false,
            ..PeerOptions::default()
        },
    )
    .await
    .expect("peer starts");

    // A follows B, who does not auto-accept; B rejects by hand.
    let follow_id = a.follow(&b.actor_id()).await.expect("Follow delivered");
    let reject = json!({
        "id": format!("{}#rejects/1", b.actor_id()),
        "type": "Reject",
        "actor": b.actor_id(),
        "object": {"id": follow_id, "type": "Follow", "actor": a.actor_id(), "object": b.actor_id()},
    });
    assert_eq!(b.deliver_json(&a.inbox(), reject).await.expect("sent"), 202);
    assert_eq!(a.follow_state(&follow_id), Some(FollowState::Rejected));

    // A Reject of a Follow nobody sent is refused.
    let stray = json!({
        "id": format!("{}#rejects/2", b.actor_id()),
        "type": "Reject",
        "actor": b.actor_id(),
        "object": {"id": format!("{}/nope", a.actor_id()), "type": "Follow", "actor": b.actor_id(), "object": a.actor_id()},
    });
    assert_eq!(b.deliver_json(&a.inbox(), stray).await.expect("sent"), 400);

    // B renames itself; A's cached view follows the verified Update(Person).
    a.actor(&b.actor_id()).await.expect("A knows B");
    let mut profile: Value = a.fetch_object(&b.actor_id()).await.expect("B's document");
    profile["name"] = json!("Bob Renamed");
    let update = json!({
        "id": format!("{}#updates/1", b.actor_id()),
        "type": "Update",
        "actor": b.actor_id(),
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": profile,
    });
    assert_eq!(b.deliver_json(&a.inbox(), update).await.expect("sent"), 202);
    let renamed = a.actor(&b.actor_id()).await.expect("cached B");
    assert_eq!(renamed.name.as_deref(), Some("Bob Renamed"));

    // B moves to A, but A does not list B in alsoKnownAs: refused.
    let moved = json!({
        "id": format!("{}#moves/1", b.actor_id()),
        "type": "Move",
        "actor": b.actor_id(),
        "object": b.actor_id(),
        "target": a.actor_id(),
    });
    let c = RemotePeer::start("carol").await;
    assert_eq!(b.deliver_json(&c.inbox(), moved).await.expect("sent"), 400);
    assert!(
        c.rejections()
            .last()
            .is_some_and(|r| r.contains("alsoKnownAs")),
        "{:?}",
        c.rejections()
    );

    let block = json!({
        "id": format!("{}#blocks/1", b.actor_id()),
        "type": "Block",
        "actor": b.actor_id(),
        "object": a.actor_id(),
    });
    assert_eq!(b.deliver_json(&a.inbox(), block).await.expect("sent"), 202);
    let kinds: Vec<ActivityKind> = a.received().iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ActivityKind::Reject,
            ActivityKind::Update,
            ActivityKind::Block
        ]
    );
}
