//! The invocation log (`/api/v1/webhooks/{id}/invocations`, `/api/v1/invocations/{id}`, and
//! replays) and the task board (`/api/v1/tasks`, with each task's delivery attempts).

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use bytes::Bytes;
use webhook_domain::model::{InvocationSummary, Page, TaskSummary};
use webhook_domain::ports::Adapters;
use webhook_domain::service::manage::{
    Caller, Invalid, LogQuery, MAX_TASKS_WITH_CONTEXT, ManageError,
};

use super::ManageState;
use super::dto::{
    AttemptList, AttemptOut, InvocationList, InvocationQuery, InvocationRecordOut,
    InvocationSummaryOut, PatchTask, TaskList, TaskListItem, TaskOut, TaskQuery, TestOut,
};
use super::error::{ApiError, ProblemBody};
use super::input::{query, read_json};
use super::{Reader, Writer, page_of};

/// A webhook's invocations, newest first, filtered by outcome, event type, source address,
/// time, test flag and words of the payload (`q`); the filters combine, and a cursor is valid
/// with the filters of its list. Entries carry summaries of their payloads
/// (`message_preview`, `payload_excerpt`), never whole payloads: `GET /api/v1/invocations/{id}`
/// has the whole record. An answer holds at most 1 MB of items: a page ends before `limit`
/// items when summaries escaped in JSON would pass it, and `next_cursor` goes on from there.
#[utoipa::path(
    operation_id = "list_invocations",
    get, path = "/api/v1/webhooks/{id}/invocations", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Webhook id"), InvocationQuery),
    responses(
        (status = 200, description = "A page of invocations", body = InvocationList),
        (status = 400, description = "Bad query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad id, filter, limit or cursor (`field` names it): an outcome not listed, an empty `event_type`, a `source_ip` that is not an address, a `since` or `until` that is not RFC 3339 or an `until` not later than `since`, a `test` other than `true` or `false`, a `q` without a word, with a word over 64 letters and digits or with more than 16 words", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn invocations<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let q: InvocationQuery = query(api.request())?;
    let page = page_of(q.limit.as_deref(), q.cursor.as_deref())?;
    let filters = LogQuery {
        outcome: q.outcome.as_deref(),
        event_type: q.event_type.as_deref(),
        source_ip: q.source_ip.as_deref(),
        since: q.since.as_deref(),
        until: q.until.as_deref(),
        test: q.test.as_deref(),
        q: q.q.as_deref(),
    };
    let page = api
        .management()
        .invocations(api.caller(), &id, &filters, page)
        .await?;
    Ok(HttpResponse::Ok().json(invocation_list(page)))
}

/// The most bytes of summaries one invocation list answer carries (the answer's envelope adds
/// a few dozen): a summary is bounded, but its parts may be escaped in JSON to several times
/// their size, so a page of `limit` items ends early when more would pass this, and its
/// `next_cursor` goes on from the last item it holds. One item is always given.
const LIST_ANSWER_ITEM_BYTES: usize = 1_000_000;

/// `page` as an answer of at most [`LIST_ANSWER_ITEM_BYTES`] of items.
fn invocation_list(page: Page<InvocationSummary>) -> InvocationList {
    let mut items = Vec::with_capacity(page.items.len());
    let mut next_cursor = page.next;
    let mut bytes = 0;
    let mut last = None;
    for summary in page.items {
        let cursor = summary.invocation.cursor();
        let item = InvocationSummaryOut::from(summary);
        // Each item and the comma before the next.
        bytes += json_len(&item) + 1;
        if bytes > LIST_ANSWER_ITEM_BYTES && last.is_some() {
            next_cursor = last;
            break;
        }
        items.push(item);
        last = Some(cursor);
    }
    InvocationList::from_page(Page {
        items,
        next: next_cursor,
    })
}

/// How many bytes `value` takes as JSON, counted without keeping them.
fn json_len(value: &impl serde::Serialize) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Writing to a counter cannot fail, and the DTOs always serialize.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

/// The whole record of one request: the invocation with its whole payload, the request as
/// received (headers with credentials redacted; its body as text when refused after it was
/// read), the problem the sender was answered, the subscriptions an ignored event was matched
/// against, the invocation a replay sent again, its task and every delivery attempt.
#[utoipa::path(
    operation_id = "get_invocation",
    get, path = "/api/v1/invocations/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Invocation id")),
    responses(
        (status = 200, description = "The invocation's whole record", body = InvocationRecordOut),
        (status = 404, description = "No such invocation in this organization", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn invocation<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let record = api
        .management()
        .invocation_record(api.caller(), &id)
        .await?;
    Ok(HttpResponse::Ok().json(InvocationRecordOut::from(record)))
}

/// Send a logged request again through the real pipeline, as a correctly authenticated sender
/// would: its payload (or, for a request refused after its body was read, its body) with the
/// headers that were kept. Quotas and the event-type filter apply; deduplication does not (a
/// replay claims no delivery id, so replaying twice makes two tasks). The new invocation names
/// the original in `replay_of` and is marked `test` only when the original was.
#[utoipa::path(
    operation_id = "replay_invocation",
    post, path = "/api/v1/invocations/{id}/replay", tag = "webhooks",
    params(("id" = uuid::Uuid, Path, description = "Invocation id")),
    responses(
        (status = 200, description = "What the pipeline did with the replay; `status` is `accepted`, `ignored` or `rejected` (a disabled webhook or an exhausted quota is the pipeline's own refusal)", body = TestOut),
        (status = 404, description = "No such invocation in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`not_replayable`: the request's body was not kept whole (refused before or while it was read, or kept only as an excerpt)", body = ProblemBody, content_type = "application/problem+json"),
        (status = 410, description = "`webhook_deleted`: the invocation's webhook was deleted", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn replay<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let result = api
        .management()
        .replay_invocation(api.caller(), &id, api.tester())
        .await?;
    Ok(HttpResponse::Ok().json(TestOut::from(result)))
}

/// The task board, newest first, filtered by target and status. Tasks carry their `context`
/// only with `include=context`: then a page is at most 50 tasks, read and written one at a
/// time into a streamed answer, so the memory an answer takes stays bounded.
#[utoipa::path(
    operation_id = "list_tasks",
    get, path = "/api/v1/tasks", tag = "tasks",
    params(TaskQuery),
    responses(
        (status = 200, description = "A page of tasks", body = TaskList),
        (status = 400, description = "Bad query", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter, include, limit (above 50 with `include=context`) or cursor", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn tasks<A: Adapters>(api: Reader<A>) -> Result<HttpResponse, ApiError> {
    let q: TaskQuery = query(api.request())?;
    let with_context = match q.include.as_deref() {
        None => false,
        Some("context") => true,
        Some(_) => {
            return Err(ApiError::invalid(Invalid::new(
                "include",
                "must be `context`",
            )));
        }
    };
    let page = page_of(q.limit.as_deref(), q.cursor.as_deref())?;
    if with_context && page.limit() > MAX_TASKS_WITH_CONTEXT {
        return Err(ApiError::invalid(Invalid::new(
            "limit",
            format!("must be at most {MAX_TASKS_WITH_CONTEXT} with `include=context`"),
        )));
    }
    let page = api
        .management()
        .tasks(
            api.caller(),
            q.target_id.as_deref(),
            q.status.as_deref(),
            page,
        )
        .await?;
    if !with_context {
        return Ok(HttpResponse::Ok().json(TaskList::from_page(page)));
    }
    let (ctx, caller) = api.into_parts();
    Ok(HttpResponse::Ok()
        .content_type(mime::APPLICATION_JSON)
        .streaming(tasks_with_context(ctx, caller, page)))
}

/// Where [`tasks_with_context`] is.
struct BoardStream<A: Adapters> {
    ctx: Arc<ManageState<A>>,
    caller: Caller,
    tasks: std::vec::IntoIter<TaskSummary>,
    started: bool,
    wrote_item: bool,
    tail: Option<String>,
}

/// A page of the board as a `TaskList`, each task read whole (with its context) and written
/// only when the previous one was sent: one payload at a time in memory. A task that
/// disappeared since the page was read (purged) is left out.
fn tasks_with_context<A: Adapters>(
    ctx: Arc<ManageState<A>>,
    caller: Caller,
    page: Page<TaskSummary>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    let tail = format!(
        "],\"next_cursor\":{}}}",
        serde_json::to_string(&page.next.map(|c| c.encode())).unwrap_or_else(|_| "null".into())
    );
    let state = BoardStream {
        ctx,
        caller,
        tasks: page.items.into_iter(),
        started: false,
        wrote_item: false,
        tail: Some(tail),
    };
    futures::stream::unfold(state, |mut state| async move {
        if !state.started {
            state.started = true;
            return Some((Ok(Bytes::from_static(b"{\"items\":[")), state));
        }
        while let Some(summary) = state.tasks.next() {
            match state
                .ctx
                .management()
                .task_by_id(&state.caller, summary.id)
                .await
            {
                Ok(task) => {
                    let mut chunk = Vec::new();
                    if state.wrote_item {
                        chunk.push(b',');
                    }
                    state.wrote_item = true;
                    if let Err(e) = serde_json::to_writer(&mut chunk, &TaskListItem::from(task)) {
                        state.tail = None;
                        return Some((Err(std::io::Error::other(e)), state));
                    }
                    return Some((Ok(Bytes::from(chunk)), state));
                }
                Err(ManageError::NotFound) => {}
                Err(e) => {
                    // The status line is sent: the answer can only be cut short.
                    tracing::warn!(error = %e, "a task could not be read for the board's stream");
                    state.tail = None;
                    state.tasks = Vec::new().into_iter();
                    return Some((Err(std::io::Error::other(e)), state));
                }
            }
        }
        state.tail.take().map(|tail| (Ok(Bytes::from(tail)), state))
    })
}

/// One task.
#[utoipa::path(
    operation_id = "get_task",
    get, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task", body = TaskOut),
        (status = 404, description = "No such task in this organization", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn task<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = api.management().task(api.caller(), &id).await?;
    Ok(HttpResponse::Ok().json(TaskOut::from(task)))
}

/// Every delivery attempt of a task, oldest first: numbered over the task's life (a retry's
/// attempts go on after the earlier ones), each with the target's answer.
#[utoipa::path(
    operation_id = "list_task_attempts",
    get, path = "/api/v1/tasks/{id}/attempts", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The task's attempts", body = AttemptList),
        (status = 404, description = "No such task in this organization", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn task_attempts<A: Adapters>(
    api: Reader<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let attempts = api.management().task_attempts(api.caller(), &id).await?;
    Ok(HttpResponse::Ok().json(AttemptList {
        items: attempts.into_iter().map(AttemptOut::from).collect(),
    }))
}

/// Move a task (an agent reporting progress): `queued → delivered → in_progress → completed |
/// failed`, `queued → failed`, `failed → queued` (a retry, as `POST /api/v1/tasks/{id}/retry`).
#[utoipa::path(
    operation_id = "update_task",
    patch, path = "/api/v1/tasks/{id}", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    request_body = PatchTask,
    responses(
        (status = 200, description = "The moved task", body = TaskOut),
        (status = 404, description = "No such task in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`, or `conflict` when the task moved meanwhile", body = ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown status, or the id is not a UUID", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn patch_task<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: PatchTask = read_json(api.request(), payload).await?;
    let task = api
        .management()
        .set_task_status(api.caller(), &id, &body.status)
        .await?;
    Ok(HttpResponse::Ok().json(TaskOut::from(task)))
}

/// Put a failed task back in the queue, due now, for a new delivery round.
///
/// The task gets the whole retry schedule again: as many attempts as a new task, backing off
/// from the first delay. Its attempts go on being numbered after the earlier ones;
/// `attempts_before_round` becomes `attempts` and `last_error` is cleared.
#[utoipa::path(
    operation_id = "retry_task",
    post, path = "/api/v1/tasks/{id}/retry", tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "Task id")),
    responses(
        (status = 200, description = "The queued task", body = TaskOut),
        (status = 404, description = "No such task in this organization", body = ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "`invalid_transition`: only failed tasks are retried", body = ProblemBody, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])),
)]
pub(crate) async fn retry_task<A: Adapters>(
    api: Writer<A>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let task = api.management().retry_task(api.caller(), &id).await?;
    Ok(HttpResponse::Ok().json(TaskOut::from(task)))
}
