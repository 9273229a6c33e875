//! Notifications while away: a device's push subscription (`push_key`,
//! `push_subscribe`, `push_unsubscribe`) and a room's level (`push_level`);
//! and the notices a session hands to the push worker (`crate::push`) once
//! its event is durable.

use hearth_protocol::ops::{
    Done, MAX_PUSH_DEVICES, MAX_PUSH_ENDPOINT, PushKey, PushKeyInfo, PushLevelList, PushLevels, PushSubscribe,
    PushUnsubscribe, RoomPushLevel, SetPushLevel, Visibility,
};
use hearth_protocol::{ErrorBody, ErrorCode, Millis, RequestId, Role, Seq, UserId};

use super::Session;
use super::dispatch::Handle;
use crate::push::{Notice, Why};
use crate::reads::Device;
use crate::rooms::Room;

impl Handle for PushKey {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let key = session.shared.push.public_key().to_string();
        session.reply(id, &PushKeyInfo { key }).await;
        Ok(())
    }
}

impl Handle for PushSubscribe {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let bad = |why: String| ErrorBody::new(ErrorCode::BadRequest, why);
        if self.endpoint.len() > MAX_PUSH_ENDPOINT {
            return Err(bad(format!("endpoint is longer than {MAX_PUSH_ENDPOINT} bytes")));
        }
        if let Some(why) = session.shared.push.refuse_endpoint(&self.endpoint) {
            return Err(bad(why));
        }
        crate::push::check_keys(&self.p256dh, &self.auth).map_err(bad)?;
        let user = session.conn.user.clone();
        let reads = session.shared.reads.clone();
        let mut settings = reads.push_settings(user.clone()).await?;
        settings.devices.retain(|d| d.endpoint != self.endpoint);
        if settings.devices.len() >= MAX_PUSH_DEVICES {
            return Err(ErrorBody::new(
                ErrorCode::LimitReached,
                format!("you get notifications on {MAX_PUSH_DEVICES} devices already; turn them off on one first"),
            ));
        }
        settings.devices.push(Device {
            endpoint: self.endpoint,
            p256dh: self.p256dh,
            auth: self.auth,
            text: self.text,
        });
        reads.set_push_settings(user, settings).await?;
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

impl Handle for PushUnsubscribe {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let user = session.conn.user.clone();
        let reads = session.shared.reads.clone();
        let mut settings = reads.push_settings(user.clone()).await?;
        settings.devices.retain(|d| d.endpoint != self.endpoint);
        reads.set_push_settings(user, settings).await?;
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

impl Handle for SetPushLevel {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let room = session.member_room(&self.room).await?;
        let user = session.conn.user.clone();
        let reads = session.shared.reads.clone();
        let mut settings = reads.push_settings(user.clone()).await?;
        settings.levels.insert(room.id.clone(), self.level);
        reads.set_push_settings(user, settings).await?;
        session.reply(id, &Done {}).await;
        Ok(())
    }
}

/// What a request hands to the push worker once its event is durable.
pub(super) struct Pending {
    push: std::sync::Arc<crate::push::Push>,
    notice: Notice,
}

impl Pending {
    /// The event is durable at `published` (a retry of a message already
    /// ordered tells nobody again).
    pub(super) fn durable(self, published: &crate::broker::Published) {
        if published.duplicate {
            return;
        }
        let Pending { push, mut notice } = self;
        notice.seq = published.seq;
        notice.ts = published.ts;
        push.notify(notice);
    }
}

impl Handle for PushLevels {
    async fn handle(self, session: &mut Session, id: RequestId) -> Result<(), ErrorBody> {
        let settings = session.shared.reads.push_settings(session.conn.user.clone()).await?;
        let levels = settings.levels.into_iter().map(|(room, level)| RoomPushLevel { room, level }).collect();
        let devices = settings.devices.len() as u32;
        session.reply(id, &PushLevelList { levels, devices }).await;
        Ok(())
    }
}

impl Session {
    /// A message about to be durable: who may need telling (those it
    /// mentions, the other members of a direct conversation, and whoever
    /// hears every message of the room, whom the worker looks up).
    pub(super) fn pending_message(&self, room: &Room, text: &str, mentioned: &[UserId]) -> Pending {
        let from = self.conn.user.clone();
        let (direct, others) = room.decide(|s| {
            let direct = s.record.visibility == Visibility::Direct;
            let others: Vec<UserId> =
                if direct { s.members.keys().filter(|m| **m != from).cloned().collect() } else { Vec::new() };
            (direct, others)
        });
        let mut users: Vec<(UserId, Why)> = mentioned.iter().map(|u| (u.clone(), Why::Mention)).collect();
        users.extend(others.into_iter().filter(|u| !mentioned.contains(u)).map(|u| (u, Why::Direct)));
        let notice = Notice {
            room: room.id.clone(),
            seq: Seq(0),
            ts: Millis(0),
            from,
            text: Some(text.to_string()),
            users,
            message: true,
            direct,
        };
        Pending { push: self.shared.push.clone(), notice }
    }

    /// Something about to wait in the room's queues (a join request, a held
    /// post, a report): those who hold `least` or above may need telling.
    pub(super) fn pending_queue(&self, room: &Room, least: Role) -> Pending {
        let now = self.shared.clock.now();
        let keepers: Vec<(UserId, Why)> = room.decide(|s| {
            s.members
                .iter()
                .filter(|(_, m)| m.role_at(now) >= least)
                .map(|(user, _)| (user.clone(), Why::Queue))
                .collect()
        });
        let notice = Notice {
            room: room.id.clone(),
            seq: Seq(0),
            ts: Millis(0),
            from: self.conn.user.clone(),
            text: None,
            users: keepers,
            message: false,
            direct: false,
        };
        Pending { push: self.shared.push.clone(), notice }
    }
}
