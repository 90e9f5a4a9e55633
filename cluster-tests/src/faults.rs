//! A fault-injecting TCP proxy between meta-nodes. Each node listens on its own loopback
//! address (127.0.0.11, 127.0.0.12, ...) and its peers reach it through a [`Proxy`]; a node's
//! outgoing Raft connections leave from its own address, so the proxy knows who talks to
//! whom. [`Partitions::isolate`] cuts a node off from its peers — open connections closed, new
//! ones refused — while clients (from 127.0.0.1) still reach it: the classic partition in
//! which a deposed leader goes on answering whoever can reach it.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// The loopback address meta-node `id` listens on in partition tests.
pub fn node_ip(id: u64) -> IpAddr {
    IpAddr::from([127, 0, 0, 10 + id as u8])
}

/// Which node addresses are cut off from the others, and the connections to cut when one is.
#[derive(Clone, Default)]
pub struct Partitions {
    inner: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    isolated: HashSet<IpAddr>,
    /// Open proxied connections: (from, to, the two streams).
    open: Vec<(IpAddr, IpAddr, TcpStream, TcpStream)>,
}

/// Whether traffic from `from` to node `to` crosses a partition: between two node addresses,
/// one of them isolated. Clients (not node addresses) are never cut.
fn cut(isolated: &HashSet<IpAddr>, from: IpAddr, to: IpAddr) -> bool {
    let is_node = |ip: &IpAddr| matches!(ip, IpAddr::V4(v4) if v4.octets()[3] > 10 && v4.octets()[..3] == [127, 0, 0]);
    is_node(&from) && from != to && (isolated.contains(&from) || isolated.contains(&to))
}

impl Partitions {
    /// No partition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cuts the node at `ip` off from every other node: its proxied connections are closed
    /// and new ones refused, both ways.
    pub fn isolate(&self, ip: IpAddr) {
        let mut s = self.inner.lock().unwrap();
        s.isolated.insert(ip);
        let isolated = s.isolated.clone();
        s.open.retain(|(from, to, a, b)| {
            if cut(&isolated, *from, *to) {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
                false
            } else {
                true
            }
        });
    }

    /// Ends every partition.
    pub fn heal(&self) {
        self.inner.lock().unwrap().isolated.clear();
    }
}

/// A proxy in front of one node: peers connect to [`Proxy::addr`].
pub struct Proxy {
    /// The address peers use for the node (its address in the group's membership).
    pub addr: SocketAddr,
}

impl Proxy {
    /// Starts a proxy to the node listening at `target`, obeying `partitions`. Runs until the
    /// test process ends.
    pub fn start(target: SocketAddr, partitions: &Partitions) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let partitions = partitions.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(from) = client.peer_addr().map(|a| a.ip()) else {
                    continue;
                };
                let to = target.ip();
                {
                    let s = partitions.inner.lock().unwrap();
                    if cut(&s.isolated, from, to) {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = (client.set_nodelay(true), server.set_nodelay(true));
                {
                    let mut s = partitions.inner.lock().unwrap();
                    s.open.retain(|(_, _, a, _)| a.peer_addr().is_ok());
                    s.open
                        .push((from, to, client.try_clone().unwrap(), server.try_clone().unwrap()));
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { addr }
    }
}

/// Copies `from` into `to` on a thread until either side ends.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_traffic_between_nodes_touching_an_isolated_one_is_cut() {
        let isolated: HashSet<IpAddr> = [node_ip(1)].into();
        assert!(cut(&isolated, node_ip(1), node_ip(2)));
        assert!(cut(&isolated, node_ip(2), node_ip(1)));
        assert!(!cut(&isolated, node_ip(2), node_ip(3)));
        // A client reaches even the isolated node.
        assert!(!cut(&isolated, IpAddr::from([127, 0, 0, 1]), node_ip(1)));
    }

    #[test]
    fn an_isolated_node_loses_its_open_connections_and_gets_no_new_ones() {
        let partitions = Partitions::new();
        let backend = TcpListener::bind((node_ip(2), 0)).unwrap();
        let proxy = Proxy::start(backend.local_addr().unwrap(), &partitions);
        let echo = std::thread::spawn(move || {
            for s in backend.incoming().take(2) {
                let mut s = s.unwrap();
                let mut b = [0u8; 1];
                while let Ok(1) = s.read(&mut b) {
                    s.write_all(&b).unwrap();
                }
            }
        });
        let connect = || {
            let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            s.bind(&SocketAddr::new(node_ip(1), 0).into()).unwrap();
            s.connect(&proxy.addr.into()).unwrap();
            TcpStream::from(s)
        };
        let mut c = connect();
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"x");
        partitions.isolate(node_ip(1));
        assert!(
            matches!(c.read(&mut b), Ok(0) | Err(_)),
            "the open connection was not cut"
        );
        let mut refused = connect();
        assert!(
            matches!(refused.read(&mut b), Ok(0) | Err(_)),
            "a new connection got through"
        );
        partitions.heal();
        let mut again = connect();
        again.write_all(b"y").unwrap();
        again.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"y");
        drop(again);
        echo.join().unwrap();
    }
}
