//! [`delegate_event_loop!`]: how a platform loop that embeds
//! [`SelectorEventLoop`](crate::SelectorEventLoop) implements
//! `AbstractEventLoop` without restating every method.
//!
//! A file of its own because the macro is the contract between the core and
//! the platform crates: they forward everything to the core and write only the
//! methods they add or change (signals on Unix, say).

/// Implements `aio_events::AbstractEventLoop` for `$ty` by forwarding to its
/// `$field: SelectorEventLoop`, then adds the methods given in the braces
/// (which must not repeat a forwarded one).
///
/// Forwarded: everything but `close` (which the platform loop must write,
/// releasing what it added before closing the core), `add_signal_handler`,
/// `remove_signal_handler` and `type_name` (which keep the trait's defaults
/// unless given).
#[macro_export]
macro_rules! delegate_event_loop {
    ($ty:ty, $field:ident, { $($extra:tt)* }) => {
        impl $crate::__private::AbstractEventLoop for $ty {
            fn call_soon(&self, handle: $crate::__private::Handle) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.call_soon(handle)
            }
            fn call_at(
                &self,
                when: ::std::time::Instant,
                handle: $crate::__private::Handle,
            ) -> ::std::result::Result<$crate::__private::TimerHandle, $crate::__private::Error> {
                self.$field.call_at(when, handle)
            }
            fn wake_at(
                &self,
                when: ::std::time::Instant,
                waker: &::std::task::Waker,
            ) -> ::std::result::Result<$crate::__private::WakeTimer, $crate::__private::Error> {
                self.$field.wake_at(when, waker)
            }
            fn wake_timer_fired(&self, timer: &$crate::__private::WakeTimer) -> bool {
                self.$field.wake_timer_fired(timer)
            }
            fn rearm_wake_timer(
                &self,
                timer: &mut $crate::__private::WakeTimer,
                waker: &::std::task::Waker,
            ) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.rearm_wake_timer(timer, waker)
            }
            fn cancel_wake_timer(&self, timer: &$crate::__private::WakeTimer) {
                self.$field.cancel_wake_timer(timer)
            }
            fn io_register(
                &self,
                raw: $crate::__private::RawSource,
            ) -> ::std::result::Result<$crate::__private::IoKey, $crate::__private::Error> {
                self.$field.io_register(raw)
            }
            fn io_poll_ready(
                &self,
                key: $crate::__private::IoKey,
                interest: $crate::__private::Interest,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), $crate::__private::Error>> {
                self.$field.io_poll_ready(key, interest, cx)
            }
            fn io_ready(&self, key: $crate::__private::IoKey, interest: $crate::__private::Interest) -> bool {
                self.$field.io_ready(key, interest)
            }
            fn io_clear_ready(&self, key: $crate::__private::IoKey, interest: $crate::__private::Interest) {
                self.$field.io_clear_ready(key, interest)
            }
            fn io_clear_and_poll_ready(
                &self,
                key: $crate::__private::IoKey,
                interest: $crate::__private::Interest,
                cx: &mut ::std::task::Context<'_>,
            ) -> ::std::task::Poll<::std::result::Result<(), $crate::__private::Error>> {
                self.$field.io_clear_and_poll_ready(key, interest, cx)
            }
            fn io_deregister(&self, key: $crate::__private::IoKey) {
                self.$field.io_deregister(key)
            }
            fn io_deregister_closing(&self, key: $crate::__private::IoKey) {
                self.$field.io_deregister_closing(key)
            }
            fn run_forever(&self, this: &$crate::__private::EventLoop) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.run_forever(this)
            }
            fn stop(&self) {
                self.$field.stop()
            }
            fn is_running(&self) -> bool {
                self.$field.is_running()
            }
            fn is_closed(&self) -> bool {
                self.$field.is_closed()
            }
            fn scheduler(&self) -> ::std::sync::Arc<dyn $crate::__private::Scheduler> {
                self.$field.scheduler()
            }
            fn wake_after(
                &self,
                delay: ::std::time::Duration,
                waker: &::std::task::Waker,
            ) -> ::std::result::Result<$crate::__private::WakeTimer, $crate::__private::Error> {
                self.$field.wake_after(delay, waker)
            }
            fn call_soon_if_open(
                &self,
                handle: $crate::__private::Handle,
            ) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.call_soon_if_open(handle)
            }
            fn scheduler_if_open(
                &self,
            ) -> ::std::result::Result<::std::sync::Arc<dyn $crate::__private::Scheduler>, $crate::__private::Error> {
                self.$field.scheduler_if_open()
            }
            fn spawn(&self, task: $crate::__private::TaskRef) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.spawn(task)
            }
            fn all_tasks(&self) -> ::std::vec::Vec<$crate::__private::TaskRef> {
                self.$field.all_tasks()
            }
            fn threadsafe(&self) -> $crate::__private::ThreadsafeLoop {
                self.$field.threadsafe()
            }
            fn set_debug(&self, enabled: bool) {
                self.$field.set_debug(enabled)
            }
            fn get_debug(&self) -> bool {
                self.$field.get_debug()
            }
            fn set_exception_handler(&self, handler: ::std::option::Option<$crate::__private::ExceptionHandler>) {
                self.$field.set_exception_handler(handler)
            }
            fn exception_handler(&self) -> ::std::option::Option<$crate::__private::ExceptionHandler> {
                self.$field.exception_handler()
            }
            fn run_in_executor(
                &self,
                job: ::std::boxed::Box<dyn FnOnce() + Send>,
            ) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.run_in_executor(job)
            }
            fn shutdown_default_executor(
                &self,
                timeout: ::std::time::Duration,
            ) -> ::std::result::Result<(), $crate::__private::Error> {
                self.$field.shutdown_default_executor(timeout)
            }
            $crate::__delegate_unix_io!($field);
            $($extra)*
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __delegate_unix_io {
    ($field:ident) => {
        fn add_reader(
            &self,
            fd: $crate::__private::RawSource,
            callback: ::std::boxed::Box<dyn FnMut()>,
        ) -> ::std::result::Result<(), $crate::__private::Error> {
            self.$field.add_reader(fd, callback)
        }
        fn remove_reader(&self, fd: $crate::__private::RawSource) -> bool {
            self.$field.remove_reader(fd)
        }
        fn add_writer(
            &self,
            fd: $crate::__private::RawSource,
            callback: ::std::boxed::Box<dyn FnMut()>,
        ) -> ::std::result::Result<(), $crate::__private::Error> {
            self.$field.add_writer(fd, callback)
        }
        fn remove_writer(&self, fd: $crate::__private::RawSource) -> bool {
            self.$field.remove_writer(fd)
        }
    };
}
