//! Group commit of SCIM creates.
//!
//! An identity provider provisions people from several connections at once. Written one
//! transaction each, creates queue for the order of changes and spend most of their time
//! in its fixed costs (taking the locks, settling smart groups, the commit's flush).
//! Instead, creates that arrive while a batch is being written wait, and the first of
//! them to get the gate writes them all in one transaction. Should any of them fail (a
//! taken userName, even within the batch), that transaction is rolled back and each is
//! written alone: every create gets exactly the answer it would have had alone.

use super::users::{ScimUser, ScimUserInput, check, create_all, run_identities};
use crate::script::Script;
use crate::{Result, Store, StoreError};
use coachloop_core::ids::AccountId;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tracing::instrument;

/// The most creates one transaction takes; more wait for the next.
const MAX_BATCH: usize = 256;

/// Creates waiting to be written, and the gate the writer of a batch holds.
#[derive(Default)]
pub(crate) struct Creates {
    pending: Mutex<Vec<Pending>>,
    gate: Arc<tokio::sync::Mutex<()>>,
}

struct Pending {
    account: AccountId,
    input: ScimUserInput,
    reply: oneshot::Sender<Result<ScimUser>>,
}

impl Store {
    /// Creates a person from a provider's user, or brings back the one it deleted under
    /// the same userName (their history stays theirs). A userName taken by a current
    /// person is a conflict. Written together with the creates that arrive meanwhile.
    #[instrument(skip_all)]
    pub async fn scim_create_user(
        &self,
        account: AccountId,
        input: &ScimUserInput,
    ) -> Result<ScimUser> {
        check(input)?;
        let (reply, mut answer) = oneshot::channel();
        let creates = &self.scim_creates;
        lock(&creates.pending).push(Pending {
            account,
            input: input.clone(),
            reply,
        });
        // Queued before waiting for the gate: whoever holds it next writes this create, if
        // the holder before has not (it answers all it took before letting go). Answered
        // meanwhile, a create leaves the line for the gate rather than hold up the rest.
        tokio::select! {
            biased;
            answered = &mut answer => return answered.map_err(unanswered)?,
            gate = creates.gate.clone().lock_owned() => {
                let batch: Vec<Pending> = {
                    let mut pending = lock(&creates.pending);
                    let take = pending.len().min(MAX_BATCH);
                    pending.drain(..take).collect()
                };
                if !batch.is_empty() {
                    // A task of its own: a request dropped half-way must not leave the
                    // others of its batch unanswered.
                    let store = self.clone();
                    tokio::spawn(async move {
                        store.write_creates(batch).await;
                        drop(gate);
                    })
                    .await
                    .map_err(|e| StoreError::Corrupt(format!("a SCIM create failed: {e}")))?;
                }
            }
        }
        answer.await.map_err(unanswered)?
    }

    /// Writes `batch`, each account's creates together, and answers each.
    async fn write_creates(&self, batch: Vec<Pending>) {
        let mut accounts: Vec<AccountId> = batch.iter().map(|p| p.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut batch: Vec<Option<Pending>> = batch.into_iter().map(Some).collect();
        for account in accounts {
            let mine: Vec<Pending> = (batch.iter_mut())
                .filter(|p| p.as_ref().is_some_and(|p| p.account == account))
                .filter_map(Option::take)
                .collect();
            if mine.len() > 1 {
                let inputs: Vec<&ScimUserInput> = mine.iter().map(|p| &p.input).collect();
                if let Ok(users) = self.scim_create_people(account, &inputs).await {
                    for (pending, user) in mine.into_iter().zip(users) {
                        let _ = pending.reply.send(Ok(user));
                    }
                    continue;
                }
            }
            for pending in mine {
                let created = self.scim_create_people(account, &[&pending.input]).await;
                let _ = pending.reply.send(created.map(|mut users| users.remove(0)));
            }
        }
    }

    /// Creates people from provider users in one transaction: all or none.
    async fn scim_create_people(
        &self,
        account: AccountId,
        inputs: &[&ScimUserInput],
    ) -> Result<Vec<ScimUser>> {
        let mut change = self.change_facts(account).await?;
        let now = change.now;
        // Their identities and emails go in one round trip.
        let mut script = Script::new(&change.tx);
        let users = create_all(&mut change.tx, &mut script, account, inputs, now).await?;
        run_identities(&mut script, &mut change.tx, inputs).await?;
        let ids: Vec<_> = users.iter().map(|u| u.user.id).collect();
        let active: Vec<i64> = (ids.iter().zip(inputs))
            .filter(|(_, input)| input.active)
            .map(|(id, _)| id.0)
            .collect();
        if !active.is_empty() {
            let enrolled =
                crate::campaigns::enrol_new_people(&mut change.tx, account.0, &active, now).await?;
            change.wake_enrolled(&enrolled);
        }
        self.commit_people(change, account, &ids).await?;
        Ok(users)
    }
}

/// The queue, even if a writer panicked while holding it (a `Vec` push or take cannot
/// leave it half-done).
fn lock(pending: &Mutex<Vec<Pending>>) -> std::sync::MutexGuard<'_, Vec<Pending>> {
    pending.lock().unwrap_or_else(|e| e.into_inner())
}

fn unanswered(_: oneshot::error::RecvError) -> StoreError {
    StoreError::Corrupt("a SCIM create was not answered".into())
}
