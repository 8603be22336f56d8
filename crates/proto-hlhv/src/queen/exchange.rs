//! One public request on one band, as the queen sees it.
//!
//! ```text
//! queen ── ReqHead ──────────────────────────────► cell
//!       ◄─ ResWant{maxSize} ─┐  (optional: the cell wants the body)
//!       ── ReqBody* ReqEnd ──┘  (at most maxSize bytes, in pieces)
//!       ◄─ ResHead{statusCode, headers}
//!       ◄─ ResBody* ResEnd
//! ```
//!
//! Any other frame, a status below 200 (the Go queen's rule) or a broken
//! band ends the exchange with a [`Failure`] (502), and the band is closed,
//! never reused. The request body is read from the client only after
//! ResWant, and never past maxSize: what is beyond is not sent (the Go queen
//! does the same, and on top loses the last piece of every body).

use bytes::Bytes;

use super::Failure;
use crate::frame::{Frame, Kind, ReqHead, ResHead};

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read the client's body and feed it through
    /// [`Exchange::handle_body_data`], then [`Exchange::handle_body_end`].
    SendBody {
        /// The most bytes the cell takes.
        max_size: u64,
    },
    /// Send the response head (status already checked: 200–999).
    Head(ResHead),
    /// Send this piece of the response body.
    Data(Bytes),
    /// The response is complete; the band can carry another request.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// ReqHead sent; ResWant or ResHead may come.
    AwaitFirst,
    /// Sending the request body.
    SendingBody,
    /// ReqEnd sent; ResHead must come.
    AwaitHead,
    /// Response head passed on; ResBody or ResEnd may come.
    Body,
    /// ResEnd received.
    Done,
    /// Failed; nothing more.
    Failed,
}

/// One request's exchange on a band.
#[derive(Debug, Clone)]
pub struct Exchange {
    phase: Phase,
    /// Request body bytes the cell still takes.
    room: u64,
    max_piece: usize,
}

impl Exchange {
    /// Starts an exchange: the returned frame (ReqHead) goes on the band
    /// first. Request body pieces are at most `max_piece` bytes.
    pub fn start(head: ReqHead, max_piece: usize) -> (Exchange, Frame) {
        (Exchange::begin(max_piece), Frame::ReqHead(Box::new(head)))
    }

    /// Starts an exchange whose ReqHead the driver writes itself (as a
    /// [`ReqHeadRef`](crate::frame::ReqHeadRef), without the copies of an
    /// owned head); otherwise as [`start`](Self::start).
    pub fn begin(max_piece: usize) -> Exchange {
        Exchange {
            phase: Phase::AwaitFirst,
            room: 0,
            max_piece: max_piece.max(1),
        }
    }

    /// Whether ResEnd arrived (the band may carry another request).
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Takes the next frame from the cell.
    pub fn handle_frame(&mut self, frame: Frame) -> Result<Step, Failure> {
        let step = match (self.phase, frame) {
            (Phase::AwaitFirst, Frame::ResWant(want)) => {
                self.phase = Phase::SendingBody;
                self.room = u64::try_from(want.max_size).unwrap_or(0);
                Ok(Step::SendBody {
                    max_size: self.room,
                })
            }
            (Phase::AwaitFirst | Phase::AwaitHead, Frame::ResHead(head)) => {
                if !(200..=999).contains(&head.status_code) {
                    Err(Failure::BadStatus(head.status_code))
                } else {
                    self.phase = Phase::Body;
                    Ok(Step::Head(head))
                }
            }
            (Phase::Body, Frame::ResBody(data)) => Ok(Step::Data(data)),
            (Phase::Body, Frame::ResEnd) => {
                self.phase = Phase::Done;
                Ok(Step::End)
            }
            (_, other) => Err(Failure::Unexpected(other.kind())),
        };
        if step.is_err() {
            self.phase = Phase::Failed;
        }
        step
    }

    /// Takes a ResHead the driver read itself (as a
    /// [`ResHeadRef`](crate::frame::ResHeadRef), without the copies of an
    /// owned head), by its status: what [`handle_frame`](Self::handle_frame)
    /// does with that head, [`Step::Head`] being `Ok` here.
    pub fn handle_res_head(&mut self, status_code: i64) -> Result<(), Failure> {
        let step = match self.phase {
            Phase::AwaitFirst | Phase::AwaitHead if !(200..=999).contains(&status_code) => {
                Err(Failure::BadStatus(status_code))
            }
            Phase::AwaitFirst | Phase::AwaitHead => {
                self.phase = Phase::Body;
                Ok(())
            }
            _ => Err(Failure::Unexpected(Kind::ResHead)),
        };
        if step.is_err() {
            self.phase = Phase::Failed;
        }
        step
    }

    /// A piece of the client's body: appends the ReqBody frames to send to
    /// `out`. Returns false once the cell's maxSize is reached: read no more,
    /// end with [`handle_body_end`](Self::handle_body_end).
    pub fn handle_body_data(&mut self, mut data: Bytes, out: &mut Vec<Frame>) -> bool {
        if self.phase != Phase::SendingBody {
            return false;
        }
        let take = usize::try_from(self.room)
            .unwrap_or(usize::MAX)
            .min(data.len());
        data.truncate(take);
        self.room -= take as u64;
        while !data.is_empty() {
            let piece = data.split_to(self.max_piece.min(data.len()));
            out.push(Frame::ReqBody(piece));
        }
        self.room > 0
    }

    /// The client's body ended (or maxSize was reached): the ReqEnd frame
    /// to send.
    pub fn handle_body_end(&mut self) -> Frame {
        if self.phase == Phase::SendingBody {
            self.phase = Phase::AwaitHead;
        }
        Frame::ReqEnd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ResWant;

    fn head(status: i64) -> Frame {
        Frame::ResHead(ResHead {
            status_code: status,
            ..ResHead::default()
        })
    }

    #[test]
    fn a_head_read_by_the_driver_moves_on_alike() {
        for status in [199, 200, 999, 1000] {
            for want_first in [false, true] {
                let (mut by_frame, _) = Exchange::start(ReqHead::default(), 4);
                let (mut by_status, _) = Exchange::start(ReqHead::default(), 4);
                if want_first {
                    let want = Frame::ResWant(ResWant { max_size: 1 });
                    by_frame.handle_frame(want.clone()).unwrap();
                    by_status.handle_frame(want).unwrap();
                    assert_eq!(by_frame.handle_body_end(), by_status.handle_body_end());
                }
                let a = by_frame.handle_frame(head(status)).map(|_| ());
                let b = by_status.handle_res_head(status);
                assert_eq!(a, b);
                let end = [by_frame, by_status].map(|mut x| x.handle_frame(Frame::ResEnd));
                assert_eq!(end[0], end[1]);
            }
        }
        // Out of turn: as a ResHead frame out of turn.
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        x.handle_frame(Frame::ResWant(ResWant { max_size: 1 }))
            .unwrap();
        assert_eq!(
            x.handle_res_head(200),
            Err(Failure::Unexpected(Kind::ResHead))
        );
    }

    #[test]
    fn head_then_body_then_end() {
        let (mut x, first) = Exchange::start(ReqHead::default(), 4);
        assert_eq!(first.kind(), Kind::ReqHead);
        assert!(matches!(x.handle_frame(head(200)), Ok(Step::Head(_))));
        let data = Bytes::from_static(b"abc");
        assert_eq!(
            x.handle_frame(Frame::ResBody(data.clone())),
            Ok(Step::Data(data))
        );
        assert_eq!(x.handle_frame(Frame::ResEnd), Ok(Step::End));
        assert!(x.is_done());
    }

    #[test]
    fn the_body_goes_in_pieces_up_to_max_size_with_the_last_piece() {
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        assert_eq!(
            x.handle_frame(Frame::ResWant(ResWant { max_size: 10 })),
            Ok(Step::SendBody { max_size: 10 })
        );
        let mut out = Vec::new();
        assert!(x.handle_body_data(Bytes::from_static(b"12345"), &mut out));
        assert!(!x.handle_body_data(Bytes::from_static(b"6789abcdef"), &mut out));
        let sent: Vec<u8> = out
            .iter()
            .flat_map(|f| match f {
                Frame::ReqBody(b) => {
                    assert!(b.len() <= 4);
                    b.to_vec()
                }
                _ => panic!("{f:?}"),
            })
            .collect();
        assert_eq!(sent, b"123456789a");
        assert_eq!(x.handle_body_end(), Frame::ReqEnd);
        assert!(matches!(x.handle_frame(head(413)), Ok(Step::Head(_))));
    }

    #[test]
    fn a_negative_max_size_takes_nothing() {
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        x.handle_frame(Frame::ResWant(ResWant { max_size: -1 }))
            .unwrap();
        let mut out = Vec::new();
        assert!(!x.handle_body_data(Bytes::from_static(b"x"), &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn what_gives_502() {
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        assert_eq!(x.handle_frame(head(101)), Err(Failure::BadStatus(101)));
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        assert_eq!(
            x.handle_frame(Frame::ResEnd),
            Err(Failure::Unexpected(Kind::ResEnd))
        );
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        x.handle_frame(Frame::ResWant(ResWant { max_size: 1 }))
            .unwrap();
        x.handle_body_end();
        assert_eq!(
            x.handle_frame(Frame::ResWant(ResWant { max_size: 1 })),
            Err(Failure::Unexpected(Kind::ResWant)),
            "one ResWant per request"
        );
        let (mut x, _) = Exchange::start(ReqHead::default(), 4);
        x.handle_frame(head(200)).unwrap();
        assert_eq!(
            x.handle_frame(head(200)),
            Err(Failure::Unexpected(Kind::ResHead))
        );
        assert!(!x.is_done());
    }
}
