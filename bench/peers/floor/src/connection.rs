//! One socket's task: the handshake, then two jobs in one loop. Frames queued by the hub are
//! gathered, every frame waiting at that moment, into one `writev`; messages the client sends
//! (in the benchmark only publishers send any) are broadcast as they arrive.

use std::io::{self, IoSlice};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::frame::{self, Frame, Message};
use crate::handshake;
use crate::hub::Hub;

/// Frames gathered into one write at most (IOV_MAX is 1024 on Linux).
const MAX_BATCH: usize = 256;

/// Runs one socket until it closes, then takes it out of the hub.
pub async fn run(stream: TcpStream, queue: mpsc::Receiver<Frame>, hub: Arc<Hub>, id: u64) {
    // Errors only end this socket; a broadcast benchmark has nobody to tell.
    let _ = serve(stream, queue, &hub).await;
    hub.remove(id);
}

async fn serve(mut stream: TcpStream, mut queue: mpsc::Receiver<Frame>, hub: &Hub) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = frame::Reader::new(handshake::accept(&mut stream).await?);
    let mut batch: Vec<Frame> = Vec::new();
    loop {
        // Messages already buffered (sent right behind the handshake, or left by the last read).
        while let Some(message) = reader.next_message()? {
            match message {
                Message::Data(opcode, payload) => hub.broadcast(&frame::encode(opcode, &payload)),
                Message::Ping(payload) => write_all(&mut stream, &[frame::encode(frame::OP_PONG, &payload)]).await?,
                Message::Close(payload) => {
                    let status = payload.get(..2).unwrap_or(&[]);
                    write_all(&mut stream, &[frame::encode(frame::OP_CLOSE, status)]).await?;
                    return Ok(());
                }
            }
        }
        tokio::select! {
            // Writes first: under load the queue is what the benchmark measures.
            biased;
            first = queue.recv() => {
                let Some(first) = first else { return Ok(()) };
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(frame) => batch.push(frame),
                        Err(_) => break,
                    }
                }
                write_all(&mut stream, &batch).await?;
                batch.clear();
            }
            readable = stream.readable() => {
                readable?;
                match stream.try_read_buf(reader.buffer(4096)) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Writes `frames` with as few `writev` calls as the socket allows.
async fn write_all(stream: &mut TcpStream, frames: &[Frame]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
    let mut pending = &mut slices[..];
    while !pending.is_empty() {
        let n = stream.write_vectored(pending).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut pending, n);
    }
    Ok(())
}
