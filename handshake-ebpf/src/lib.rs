#![no_std]
// This file exists so that handshake-user can name this crate as a build-dependency:
// cargo then rebuilds the loader when the XDP program changes.
