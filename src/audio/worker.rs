//! The thread that owns one libpulse connection.
//!
//! libpulse objects are neither `Send` nor thread-safe, so one dedicated thread creates the
//! mainloop and context, and everything else talks to it over a channel. The thread uses the
//! *standard* mainloop and iterates it only while an operation is in flight, with a deadline on
//! every wait: this needs no `unsafe` (libpulse-binding's threaded mainloop needs raw-pointer
//! signalling from callbacks) and no wake-up plumbing. Between commands the connection idles;
//! the PulseAudio native protocol needs no client keep-alive. A command that finds the
//! connection broken reconnects once before failing.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use libpulse_binding as pulse;
use pulse::callbacks::ListResult;
use pulse::context::{Context, FlagSet, State};
use pulse::mainloop::standard::Mainloop;
use pulse::operation::{Operation, State as OperationState};
use pulse::proplist::{Proplist, properties};
use pulse::time::MicroSeconds;
use tokio::sync::oneshot;

use super::AudioError;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one operation may take.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A sink as the server lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkEntry {
    /// The sink's name.
    pub name: String,
    /// The module that created it, if any.
    pub owner_module: Option<u32>,
}

/// A request to the connection thread.
pub(super) enum Command {
    /// Load a module; replies with its index.
    LoadModule {
        name: &'static str,
        argument: String,
        reply: oneshot::Sender<Result<u32, AudioError>>,
    },
    /// Unload a module; `reply` is `None` for fire-and-forget (a dropped sink).
    UnloadModule {
        index: u32,
        reply: Option<oneshot::Sender<Result<(), AudioError>>>,
    },
    /// List every sink.
    ListSinks {
        reply: oneshot::Sender<Result<Vec<SinkEntry>, AudioError>>,
    },
}

/// Starts the connection thread and waits until it has connected to `server` (`None`: the
/// libpulse default, i.e. `PULSE_SERVER` or the user's runtime socket). Returns the command
/// channel and the server string libpulse reports.
pub(super) async fn start(
    server: Option<String>,
) -> Result<(mpsc::Sender<Command>, Option<String>), AudioError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (command_tx, command_rx) = mpsc::channel();
    thread::Builder::new()
        .name("pulse".into())
        .spawn(move || {
            let connection = Connection::open(server.as_deref());
            let connection = match connection {
                Ok(connection) => {
                    let _ = ready_tx.send(Ok(connection.context.get_server()));
                    connection
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            serve(connection, server, command_rx);
        })
        .map_err(|e| AudioError::Thread(e.to_string()))?;
    let reported = ready_rx.await.map_err(|_| AudioError::WorkerGone)??;
    Ok((command_tx, reported))
}

fn serve(mut connection: Connection, server: Option<String>, commands: mpsc::Receiver<Command>) {
    while let Ok(command) = commands.recv() {
        if !connection.is_ready() {
            tracing::info!("pulseaudio connection lost; reconnecting");
            match Connection::open(server.as_deref()) {
                Ok(fresh) => connection = fresh,
                Err(error) => {
                    command.fail(error);
                    continue;
                }
            }
        }
        match command {
            Command::LoadModule {
                name,
                argument,
                reply,
            } => {
                let _ = reply.send(connection.load_module(name, &argument));
            }
            Command::UnloadModule { index, reply } => {
                let result = connection.unload_module(index);
                match reply {
                    Some(reply) => {
                        let _ = reply.send(result);
                    }
                    None => {
                        if let Err(error) = result {
                            tracing::warn!(%error, module = index, "cannot unload pulseaudio module");
                        }
                    }
                }
            }
            Command::ListSinks { reply } => {
                let _ = reply.send(connection.list_sinks());
            }
        }
    }
    connection.context.disconnect();
}

impl Command {
    fn fail(self, error: AudioError) {
        match self {
            Command::LoadModule { reply, .. } => drop(reply.send(Err(error))),
            Command::UnloadModule {
                reply: Some(reply), ..
            } => drop(reply.send(Err(error))),
            Command::UnloadModule { reply: None, index } => {
                tracing::warn!(%error, module = index, "cannot unload pulseaudio module");
            }
            Command::ListSinks { reply } => drop(reply.send(Err(error))),
        }
    }
}

struct Connection {
    mainloop: Mainloop,
    context: Context,
}

impl Connection {
    fn open(server: Option<&str>) -> Result<Self, AudioError> {
        let connect_error = |reason: String| AudioError::Connect {
            server: server.unwrap_or("(default)").to_owned(),
            reason,
        };
        let mainloop =
            Mainloop::new().ok_or_else(|| connect_error("cannot create a mainloop".into()))?;
        let mut proplist =
            Proplist::new().ok_or_else(|| connect_error("cannot create a proplist".into()))?;
        proplist
            .set_str(properties::APPLICATION_NAME, "Hati")
            .map_err(|()| connect_error("cannot set the application name".into()))?;
        let mut context = Context::new_with_proplist(&mainloop, "Hati", &proplist)
            .ok_or_else(|| connect_error("cannot create a context".into()))?;
        context
            .connect(server, FlagSet::NOAUTOSPAWN, None)
            .map_err(|e| connect_error(describe(e)))?;
        let mut connection = Self { mainloop, context };
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            match connection.context.get_state() {
                State::Ready => return Ok(connection),
                State::Failed | State::Terminated => {
                    return Err(connect_error(describe(connection.context.errno())));
                }
                _ => connection
                    .iterate(deadline)
                    .map_err(|_| connect_error("timed out".into()))?,
            }
        }
    }

    fn is_ready(&self) -> bool {
        self.context.get_state() == State::Ready
    }

    /// One mainloop iteration that returns by `deadline` at the latest.
    fn iterate(&mut self, deadline: Instant) -> Result<(), AudioError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AudioError::Timeout);
        }
        let micros = u64::try_from(left.as_micros()).unwrap_or(u64::MAX);
        let failed = |e| AudioError::Operation {
            reason: describe(e),
        };
        self.mainloop
            .prepare(Some(MicroSeconds(micros)))
            .map_err(failed)?;
        self.mainloop.poll().map_err(failed)?;
        self.mainloop.dispatch().map_err(failed)?;
        Ok(())
    }

    fn wait<T: ?Sized>(&mut self, operation: &mut Operation<T>) -> Result<(), AudioError> {
        let deadline = Instant::now() + OPERATION_TIMEOUT;
        loop {
            match operation.get_state() {
                OperationState::Done => return Ok(()),
                OperationState::Cancelled => {
                    return Err(AudioError::Operation {
                        reason: describe(self.context.errno()),
                    });
                }
                OperationState::Running => {
                    if let Err(error) = self.iterate(deadline) {
                        operation.cancel();
                        return Err(error);
                    }
                }
            }
        }
    }

    fn load_module(&mut self, name: &str, argument: &str) -> Result<u32, AudioError> {
        let index = Rc::new(RefCell::new(None));
        let slot = Rc::clone(&index);
        let mut operation = self
            .context
            .introspect()
            .load_module(name, argument, move |i| *slot.borrow_mut() = Some(i));
        self.wait(&mut operation)?;
        match index.take() {
            Some(i) if i != pulse::def::INVALID_INDEX => Ok(i),
            _ => Err(AudioError::LoadModule {
                module: name.to_owned(),
                reason: describe(self.context.errno()),
            }),
        }
    }

    fn unload_module(&mut self, index: u32) -> Result<(), AudioError> {
        let success = Rc::new(RefCell::new(false));
        let slot = Rc::clone(&success);
        let mut operation = self
            .context
            .introspect()
            .unload_module(index, move |ok| *slot.borrow_mut() = ok);
        self.wait(&mut operation)?;
        if success.take() {
            Ok(())
        } else {
            Err(AudioError::Operation {
                reason: format!("unload module {index}: {}", describe(self.context.errno())),
            })
        }
    }

    fn list_sinks(&mut self) -> Result<Vec<SinkEntry>, AudioError> {
        let sinks = Rc::new(RefCell::new(Ok(Vec::new())));
        let slot = Rc::clone(&sinks);
        let mut operation = self.context.introspect().get_sink_info_list(move |item| {
            let mut sinks = slot.borrow_mut();
            match (item, sinks.as_mut()) {
                (ListResult::Item(info), Ok(list)) => list.push(SinkEntry {
                    name: info.name.as_deref().unwrap_or_default().to_owned(),
                    owner_module: info.owner_module,
                }),
                (ListResult::Error, _) => *sinks = Err(()),
                _ => {}
            }
        });
        self.wait(&mut operation)?;
        sinks
            .replace(Ok(Vec::new()))
            .map_err(|()| AudioError::Operation {
                reason: format!("list sinks: {}", describe(self.context.errno())),
            })
    }
}

fn describe(error: pulse::error::PAErr) -> String {
    error
        .to_string()
        .unwrap_or_else(|| format!("pulseaudio error {}", error.0))
}
