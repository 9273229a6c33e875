//! Reports and warnings at work: a member reports a message, the room's
//! welcomers and moderators read the open reports and resolve them —
//! dismissed, or acted on in the same request — and moderators warn members
//! and lift warnings.

use hearth_protocol::event::Event;
use hearth_protocol::ops::{
    Appended, Report, ReportList, ReportOutcome, Reports, ResolveReport, Unwarn, Warn, Warnings,
};
use hearth_protocol::{ErrorBody, RequestId, Role, Seq};

use crate::room::messages::Annotations;
use crate::store::AnnexTable;

use super::dispatch::Handle;
use super::{Session, fit_in_frame};

impl Handle for Report {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        // Reporting again answers with the open report.
        if let Some((seq, ts)) = room.decide(|s| s.open_report_by(&user, args.seq)) {
            session.reply(id, &Appended { seq, ts, held: false }).await;
            return Ok(());
        }
        let (message, notes) = session.message_at(&room, args.seq).await?;
        // The text as it is now: an edit after the report does not hide it.
        let text = notes.versions.last().map_or_else(|| message.text.clone(), |(_, newest)| newest.text.clone());
        let decide = |s: &crate::room::RoomState, args: Report| {
            s.decide_report(&user, &message, &notes, text.clone(), args.category, args.note, now)
        };
        let audience = |draft: &crate::room::Draft| match &draft.event {
            Event::Report(report) => report.audience,
            _ => Role::Welcomer,
        };
        session.check_in_flight()?;
        let (published, audience) = session.decide_ordered_peek(&room, args, decide, audience).await?;
        session.pending_queue(&room, audience).durable(&published);
        session.reply(id, &Appended { seq: published.seq, ts: published.ts, held: false }).await;
        Ok(())
    }
}

impl Handle for Reports {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let (user, now) = session.caller();
        let room = session.member_room(&self.room).await?;
        let mut reports = room.check(|s| s.open_reports(&user, now))?;
        // A report keeps the text as reported, but not an erased member's.
        let messages: Vec<Seq> = reports.iter().map(|r| r.message).collect();
        if !messages.is_empty() {
            let rows = session.shared.registry.broker().annex(room.id.clone(), AnnexTable::Message, messages).await?;
            for report in &mut reports {
                let notes = Annotations::read(rows.iter().filter(|r| r.target == report.message));
                if notes.erased {
                    report.text = crate::room::messages::deleted_text();
                }
                if notes.former {
                    report.author = crate::room::messages::former_member();
                }
            }
        }
        let more = fit_in_frame(session.conn.codec, &mut reports);
        session.reply(id, &ReportList { reports, more }).await;
        Ok(())
    }
}

/// Acts on the reported message's author (or the message) as `outcome`
/// says, then closes the reports — one request, two events: the action
/// (with its own checks; refused, nothing is resolved) and the resolution.
impl Handle for ResolveReport {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        let (message, notes) = session.message_at(&room, args.seq).await?;
        let reason = args.reason.clone();
        // Something to resolve, and the caller may: before acting.
        room.check(|s| s.decide_resolve(&user, args.seq, &notes, args.outcome, reason.clone(), now).map(drop))?;
        let author = message.from.clone();
        // Dismissing acts on nothing; nor does deleting a message deleted
        // meanwhile (by its author, say).
        let acts = match args.outcome {
            ReportOutcome::Dismiss => false,
            ReportOutcome::Delete => notes.deleted.is_none(),
            _ => true,
        };
        if acts {
            let act = |s: &crate::room::RoomState, reason| match args.outcome {
                ReportOutcome::Delete => s.decide_delete(&user, &message, &notes, now),
                ReportOutcome::Warn => s.decide_warn(&user, &author, reason, now),
                // No duration is refused as one out of range: a mute needs one.
                ReportOutcome::Mute => s.decide_mute(&user, &author, args.duration_secs.unwrap_or(0), reason, now),
                ReportOutcome::Kick => s.decide_kick(&user, &author, reason, now),
                ReportOutcome::Ban => s.decide_ban(&user, &author, reason, args.duration_secs, now),
                ReportOutcome::Dismiss => Err(crate::room::Refusal::NothingToChange),
            };
            session.decide_ordered(&room, reason.clone(), act).await?;
        }
        session
            .decide_applied(id, &room, args, |s, args| {
                s.decide_resolve(&user, args.seq, &notes, args.outcome, args.reason, now)
            })
            .await
    }
}

impl Handle for Warn {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_warn(&user, &args.user, args.reason, now)).await
    }
}

impl Handle for Unwarn {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let args = self;
        let (user, now) = session.caller();
        let room = session.member_room(&args.room).await?;
        session.decide_applied(id, &room, args, |s, args| s.decide_unwarn(&user, &args.user, args.warning, now)).await
    }
}

impl Handle for Warnings {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let (user, now) = session.caller();
        let room = session.member_room(&self.room).await?;
        let whose = self.user.unwrap_or_else(|| user.clone());
        let list = room.check(|s| s.warnings_of(&user, &whose, now))?;
        session.reply(id, &list).await;
        Ok(())
    }
}
