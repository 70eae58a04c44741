//! The simplest backend: one system call per datagram on a std socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::{Datagram, IoBackend, IoStats};

/// One `recv_from` / `send_to` per datagram.
#[derive(Debug)]
pub struct BasicBackend {
    socket: UdpSocket,
    queue: Vec<(SocketAddr, Bytes)>,
    buf: BytesMut,
    stats: IoStats,
    timeout: Option<Option<Duration>>,
}

impl BasicBackend {
    /// Wraps a bound socket.
    pub fn new(socket: UdpSocket) -> io::Result<Self> {
        socket.set_nonblocking(false)?;
        Ok(BasicBackend { socket, queue: Vec::new(), buf: BytesMut::new(), stats: IoStats::default(), timeout: None })
    }

    fn set_timeout(&mut self, t: Option<Duration>) -> io::Result<()> {
        let t = t.map(|d| d.max(Duration::from_micros(1)));
        if self.timeout != Some(t) {
            self.socket.set_read_timeout(t)?;
            self.timeout = Some(t);
        }
        Ok(())
    }
}

impl IoBackend for BasicBackend {
    fn name(&self) -> &'static str {
        "basic"
    }

    fn local_addr(&self) -> SocketAddr {
        self.socket.local_addr().expect("bound socket has an address")
    }

    fn recv(&mut self, timeout: Option<Duration>, out: &mut Vec<Datagram>) -> io::Result<usize> {
        self.set_timeout(timeout)?;
        let mut n = 0;
        loop {
            if self.buf.capacity() < 2048 {
                self.buf = BytesMut::with_capacity(64 * 2048);
            }
            self.buf.resize(2048, 0);
            let r = self.socket.recv_from(&mut self.buf[..]);
            match r {
                Ok((len, source)) => {
                    self.buf.truncate(len);
                    out.push(Datagram { source, contents: self.buf.split().freeze() });
                    n += 1;
                    self.stats.recv_datagrams += 1;
                    self.stats.recv_calls += 1;
                    if n >= 64 {
                        break;
                    }
                    // Drain what else is ready without waiting.
                    self.socket.set_nonblocking(true)?;
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => {
                    self.socket.set_nonblocking(false)?;
                    return Err(e);
                }
            }
        }
        self.socket.set_nonblocking(false)?;
        Ok(n)
    }

    fn queue(&mut self, destination: SocketAddr, contents: Bytes) {
        self.queue.push((destination, contents));
    }

    fn flush(&mut self) -> io::Result<()> {
        for (dst, b) in self.queue.drain(..) {
            self.stats.send_calls += 1;
            match self.socket.send_to(&b, dst) {
                Ok(_) => self.stats.sent_datagrams += 1,
                Err(_) => self.stats.send_errors += 1,
            }
        }
        Ok(())
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}
