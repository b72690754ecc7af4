//! Context propagation: sync nesting, `.await`, `join_all`, `tokio::spawn`, threads, init_tracer.

mod common;

use std::collections::HashSet;

use axion::{FutureExt, MetadataType, Tracer};
use common::tracer;
use futures_util::future::join_all;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_spans_keep_their_context_across_await_points() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let inner_tracer = tracer.clone();
    tracer
        .async_span("outer", |outer| async move {
            for _ in 0..5 {
                tokio::task::yield_now().await;
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                assert_eq!(axion::current_span().unwrap().span_id(), outer.span_id());
            }
            inner_tracer
                .async_span("inner", |_| async {
                    tokio::task::yield_now().await;
                })
                .await;
            assert_eq!(axion::current_span().unwrap().span_id(), outer.span_id());
        })
        .await;
    assert!(axion::current_span().is_none());
    let outer = sink.observation("outer");
    assert_eq!(
        sink.observation("inner").parent_observation_id.as_deref(),
        Some(outer.id.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_children_under_join_all_nest_under_their_parent() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let children = tracer.clone();
    tracer
        .async_span("parent", |_| async move {
            let tasks = (0..100).map(|i| {
                let children = children.clone();
                async move {
                    children
                        .async_span(format!("child-{i}"), |child| async move {
                            // Interleave the children: each yields several times while the
                            // others run on the same poll of join_all.
                            for _ in 0..(i % 7) {
                                tokio::task::yield_now().await;
                            }
                            let grandchild = axion::current_tracer()
                                .unwrap()
                                .span(format!("grandchild-{i}"));
                            assert_eq!(grandchild.parent_id(), child.span_id());
                        })
                        .await
                }
            });
            join_all(tasks).await;
        })
        .await;
    let parent = sink.observation("parent");
    let observations = sink.observations();
    assert_eq!(observations.len(), 201);
    let children: Vec<_> = observations
        .iter()
        .filter(|o| o.name.as_deref().unwrap().starts_with("child-"))
        .collect();
    assert_eq!(children.len(), 100);
    for child in &children {
        assert_eq!(
            child.parent_observation_id.as_deref(),
            Some(parent.id.as_str()),
            "{child:?}"
        );
        assert_eq!(child.trace_id, parent.trace_id);
    }
    let child_ids: HashSet<_> = children.iter().map(|c| c.id.as_str()).collect();
    for grandchild in observations
        .iter()
        .filter(|o| o.name.as_deref().unwrap().starts_with("grandchild-"))
    {
        let index = &grandchild.name.as_deref().unwrap()["grandchild-".len()..];
        let own_child = sink.observation(&format!("child-{index}"));
        assert_eq!(
            grandchild.parent_observation_id.as_deref(),
            Some(own_child.id.as_str())
        );
        assert!(child_ids.contains(grandchild.parent_observation_id.as_deref().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_join_the_trace_only_when_asked() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let for_tasks = tracer.clone();
    tracer
        .async_span("request", |_| async move {
            let carried = for_tasks.clone();
            let with_context =
                tokio::spawn(async move { drop(carried.span("carried")) }.in_current_trace());
            let bare = for_tasks.clone();
            let without_context = tokio::spawn(async move { drop(bare.span("detached")) });
            with_context.await.unwrap();
            without_context.await.unwrap();
        })
        .await;
    let request = sink.observation("request");
    assert_eq!(
        sink.observation("carried").parent_observation_id.as_deref(),
        Some(request.id.as_str())
    );
    assert_eq!(sink.observation("detached").parent_observation_id, None);
}

#[test]
fn threads_join_the_trace_through_bind_current_trace() {
    let (tracer, sink) = tracer(MetadataType::Base);
    {
        let _root = tracer.span("root");
        let worker_tracer = tracer.clone();
        std::thread::spawn(axion::bind_current_trace(move || {
            drop(worker_tracer.span("on_thread"))
        }))
        .join()
        .unwrap();
        let other = tracer.clone();
        std::thread::spawn(move || drop(other.span("unbound")))
            .join()
            .unwrap();
    }
    let root = sink.observation("root");
    assert_eq!(
        sink.observation("on_thread")
            .parent_observation_id
            .as_deref(),
        Some(root.id.as_str())
    );
    assert_eq!(sink.observation("unbound").parent_observation_id, None);
}

#[test]
fn current_tracer_follows_spans_and_guards() {
    let (first, _) = tracer(MetadataType::Base);
    let (second, _) = tracer(MetadataType::Llm);
    assert!(axion::current_tracer().is_none());
    {
        let a = first.span("a");
        assert!(axion::current_tracer().unwrap().same_as(&first));
        {
            let _b = second.span("b");
            assert!(axion::current_tracer().unwrap().same_as(&second));
        }
        assert!(
            axion::current_tracer().unwrap().same_as(&first),
            "restored after a nested tracer"
        );
        // A tracer set inside a span wins over the span's own, and only until its guard drops.
        let other = axion::set_current_tracer(second.clone());
        assert!(axion::current_tracer().unwrap().same_as(&second));
        assert_eq!(axion::current_span().unwrap().span_id(), a.span_id());
        drop(other);
        assert!(axion::current_tracer().unwrap().same_as(&first));
        let cleared = axion::reset_tracer_context();
        assert!(!axion::has_current_tracer());
        drop(cleared);
        assert!(axion::has_current_tracer());
    }
    let guard = axion::set_current_tracer(second.clone());
    assert!(axion::current_tracer().unwrap().same_as(&second));
    guard.reset();
    assert!(axion::current_tracer().is_none());
}

#[test]
fn init_tracer_reuses_explicit_then_context_then_global() {
    let (explicit, _) = tracer(MetadataType::Base);
    let (in_context, _) = tracer(MetadataType::Base);
    let (global, _) = tracer(MetadataType::Base);

    let fresh = axion::init_tracer(MetadataType::Knowledge);
    assert_eq!(fresh.metadata_type(), MetadataType::Knowledge);
    assert!(!fresh.same_as(&explicit));

    axion::set_default_global_tracer(Some(global.clone()));
    assert!(axion::init_tracer(MetadataType::Base).same_as(&global));
    {
        let _guard = in_context.context();
        assert!(axion::init_tracer(MetadataType::Base).same_as(&in_context));
        let builder = Tracer::builder(MetadataType::Base)
            .tracer(explicit.clone())
            .force_new(true);
        assert!(
            axion::init_tracer_with(builder).same_as(&explicit),
            "explicit wins even with force_new"
        );
        let forced = axion::init_tracer_with(
            Tracer::builder(MetadataType::Llm)
                .force_new(true)
                .tags(["x"]),
        );
        assert!(!forced.same_as(&in_context));
        assert_eq!(forced.tags(), ["x"]);
    }
    axion::set_default_global_tracer(None);
    assert!(axion::default_global_tracer().is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_async_spans_are_recorded_as_cancelled() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let never = tracer.async_span("abandoned", |_| std::future::pending::<()>());
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(5), never).await;
    assert!(timed_out.is_err());
    let observation = sink.observation("abandoned");
    assert_eq!(observation.level, axion::ObservationLevel::Warning);
    assert_eq!(
        observation.status_message.as_deref(),
        Some("cancelled before completion")
    );
}

#[tokio::test(flavor = "current_thread")]
async fn panics_inside_async_spans_mark_them_failed() {
    let (tracer, sink) = tracer(MetadataType::Base);
    let task = tokio::spawn(tracer.async_span("explodes", |_| async {
        tokio::task::yield_now().await;
        panic!("boom");
    }));
    assert!(task.await.unwrap_err().is_panic());
    let observation = sink.observation("explodes");
    assert_eq!(observation.level, axion::ObservationLevel::Error);
    assert_eq!(observation.status_message.as_deref(), Some("panicked"));
}
