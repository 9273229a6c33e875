//! One request kind, one handler: every operation of the protocol implements
//! [`Handle`] in the module of its concern, and [`Session::dispatch`] is made
//! from the protocol's own table of operations (`for_each_op!`). Adding an
//! operation is: the protocol's op, a decider in `room`, one `Handle` impl —
//! the compiler asks for the impl, and nothing else is edited.

use std::future::Future;

use hearth_protocol::ops::Op;
use hearth_protocol::{ErrorBody, RequestId};

use super::Session;

/// What a connection does with one request of this kind: reply to `id`
/// (now, or once its event is durable), or refuse with the error its reply
/// carries.
pub(super) trait Handle {
    fn handle(self, session: &mut Session, id: RequestId) -> impl Future<Output = Result<(), ErrorBody>> + Send;
}

macro_rules! dispatch {
    ($($variant:ident),*) => {
        impl Session {
            /// Hands the request to its kind's handler.
            pub(super) async fn dispatch(&mut self, id: RequestId, op: Op) -> Result<(), ErrorBody> {
                match op {
                    $( Op::$variant(args) => args.handle(self, id).await, )*
                }
            }
        }
    };
}

hearth_protocol::for_each_op!(dispatch);
