//! One request's path through `HttpServer::data` for the `http_server`
//! example: feeding the body of the request in progress, then starting the
//! next one from its head (refuse it, answer it, or read its body). `data`
//! itself only walks the input between these two steps.

use super::*;

/// What `data` does after one of its steps.
pub(crate) enum Next {
    /// Go on with the rest of the input.
    Go,
    /// The input ends inside a head or a body: wait for more.
    Wait,
    /// A final answer was sent (or could not be): close after flush.
    Close,
}

impl HttpServer {
    /// Feeds `input` to the body of the request in progress (none: nothing
    /// to do), answering the request once its body is complete. Returns the
    /// bytes used and what comes next.
    pub(crate) fn feed_body(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut HttpConn,
        input: &[u8],
        now: Instant,
    ) -> (usize, Next) {
        let mut pos = 0;
        match &mut st.body {
            Body::None => {}
            Body::Length(left, then) => {
                let take = (*left).min((input.len()) as u64) as usize;
                if then.is_some() {
                    st.echo.extend_from_slice(&input[..take]);
                }
                pos += take;
                *left -= take as u64;
                // Body progress (or its end, when the next head's wait
                // begins) restarts the clock.
                st.waiting_since = now;
                if *left > 0 {
                    return (pos, Next::Wait);
                }
                let then = then.take();
                st.body = Body::None;
                if let Some(pending) = then {
                    if !self.answer(ctx, conn, st, pending) {
                        return (pos, Next::Close);
                    }
                }
            }
            Body::Chunked(chunks, pending) => {
                let keep = matches!(pending.answer, Answer::Echo);
                let echo = &mut st.echo;
                let mut sink = |data: &[u8]| {
                    if keep {
                        echo.extend_from_slice(data);
                    }
                };
                match chunks.feed(input, MAX_BODY, &mut sink) {
                    Ok((used, done)) => {
                        pos += used;
                        if used > 0 {
                            st.waiting_since = now;
                        }
                        if !done {
                            return (pos, Next::Wait);
                        }
                        let pending = *pending;
                        st.body = Body::None;
                        if !self.answer(ctx, conn, st, pending) {
                            return (pos, Next::Close);
                        }
                    }
                    Err(e) => {
                        let reply = match e {
                            ChunkError::TooLarge => &BODY_TOO_LARGE,
                            ChunkError::Malformed(why) => {
                                log::debug!("{conn}: 400: {why}");
                                &BAD_REQUEST
                            }
                        };
                        let (send_body, minor) = (pending.send_body, pending.minor);
                        self.refuse(ctx, conn, reply, send_body, minor);
                        return (pos, Next::Close);
                    }
                }
            }
        }
        (pos, Next::Go)
    }

    /// Parses the head at the start of `input` and acts on it: refuses it,
    /// answers it, or starts reading its body. Returns the bytes used and
    /// what comes next.
    pub(crate) fn start_request(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut HttpConn,
        input: &[u8],
        now: Instant,
    ) -> (usize, Next) {
        let head = match parse::parse_head(input) {
            Ok(Some(head)) => head,
            Ok(None) => return (0, Next::Wait),
            Err(e) => {
                let reply = match e {
                    HeadError::Malformed(why) => {
                        log::debug!("{conn}: 400: {why}");
                        &BAD_REQUEST
                    }
                    HeadError::TooLarge => &HEAD_TOO_LARGE,
                    HeadError::Version => &BAD_VERSION,
                };
                self.refuse(ctx, conn, reply, true, 1);
                return (0, Next::Close);
            }
        };
        let pos = head.len;
        st.waiting_since = now;
        let send_body = head.method != b"HEAD";
        let chunked = head.transfer_coding == TransferCoding::Chunked;
        let refusal = if head.transfer_coding == TransferCoding::Other {
            Some(&NOT_IMPLEMENTED)
        } else if head.expect == Expect::Other {
            Some(&EXPECTATION_FAILED)
        } else if head.content_length > MAX_BODY {
            Some(&BODY_TOO_LARGE)
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.refuse(ctx, conn, reply, send_body, head.minor);
            return (pos, Next::Close);
        }
        let answer = route(head.path, head.method);
        let has_body = chunked || head.content_length > 0;
        if has_body && head.expect == Expect::Continue {
            if let Answer::Fixed(reply) = answer {
                if !matches!(reply.status.as_bytes(), [b'2', ..]) {
                    // Refused before the body is sent: whether the
                    // client sends it anyway cannot be known, so the
                    // connection cannot be reused (RFC 9110 §10.1.1).
                    self.refuse(ctx, conn, reply, send_body, head.minor);
                    return (pos, Next::Close);
                }
            }
            if ctx.write(conn, CONTINUE).is_err() {
                return (pos, Next::Close);
            }
        }
        let pending = Pending {
            answer,
            send_body,
            keep_alive: head.keep_alive,
            minor: head.minor,
        };
        if let Answer::Echo = answer {
            let content_type = head.content_type.unwrap_or(b"application/octet-stream");
            st.echo_type.clear();
            st.echo_type.extend_from_slice(content_type);
            if !chunked {
                // Within MAX_BODY, checked above.
                st.echo.reserve(head.content_length as usize);
            }
        }
        if chunked {
            st.body = Body::Chunked(chunked::Chunked::default(), pending);
            return (pos, Next::Go);
        }
        if head.content_length > 0 {
            if let Answer::Echo = answer {
                st.body = Body::Length(head.content_length, Some(pending));
                return (pos, Next::Go);
            }
            st.body = Body::Length(head.content_length, None);
        }
        if !self.answer(ctx, conn, st, pending) {
            return (pos, Next::Close);
        }
        (pos, Next::Go)
    }
}
