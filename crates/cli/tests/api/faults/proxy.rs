//! A TCP proxy between Keyturn and PostgreSQL that can break the link the two ways networks
//! do: resetting every connection (a database that stopped, a firewall that rejects), or
//! silently dropping everything (a cable pulled, a firewall that drops: nothing answers and
//! nothing closes).

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Up,
    /// Every open connection is reset, and new ones are reset once accepted.
    Reset,
    /// Bytes stop moving both ways; connections stay open. New connections are accepted by
    /// the kernel but never answered.
    BlackHole,
}

pub struct Proxy {
    pub addr: SocketAddr,
    link: watch::Sender<Link>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (link, watching) = watch::channel(Link::Up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(relay(client, upstream, watching.clone()));
            }
        });
        Self { addr, link, task }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Closes a socket with a reset rather than an orderly close.
fn reset(stream: TcpStream) {
    let _ = stream.set_zero_linger();
    drop(stream);
}

async fn wait_while_black_holed(link: &mut watch::Receiver<Link>) -> Link {
    loop {
        let now = *link.borrow_and_update();
        if now != Link::BlackHole {
            return now;
        }
        if link.changed().await.is_err() {
            return Link::Reset;
        }
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mut link: watch::Receiver<Link>) {
    if wait_while_black_holed(&mut link).await == Link::Reset {
        return reset(client);
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let (mut c, mut s) = (client, server);
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    loop {
        // Read from either side, unless the link breaks first.
        let (from_client, n) = tokio::select! {
            r = c.read(&mut up) => (true, r),
            r = s.read(&mut down) => (false, r),
            _ = link.changed() => {
                if *link.borrow() == Link::Reset {
                    reset(c);
                    reset(s);
                    return;
                }
                continue;
            }
        };
        let n = match n {
            Ok(0) | Err(_) => {
                reset(c);
                reset(s);
                return;
            }
            Ok(n) => n,
        };
        // A black hole swallows nothing: the bytes wait until the link heals (TCP would
        // retransmit them), or are lost with the connection when it resets.
        if wait_while_black_holed(&mut link).await == Link::Reset {
            reset(c);
            reset(s);
            return;
        }
        let written = if from_client {
            s.write_all(&up[..n]).await
        } else {
            c.write_all(&down[..n]).await
        };
        if written.is_err() {
            reset(c);
            reset(s);
            return;
        }
    }
}
