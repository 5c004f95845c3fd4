//! The server (`src/server/`): request bodies, the per-connection guard, protective limits and
//! contained panics, stream integrity on every provider, and client disconnects.

mod body;
mod client_disconnect;
mod conn;
mod protection;
mod proxy;
mod stream_integrity;
