//! Request handling yields the CPU to the scheduler.
//!
//! The scheduler's promise is a moderation at the due millisecond; a request's is an answer
//! within a few milliseconds more or less. When the cores are saturated (forty pollers on two
//! cores, say) the kernel shares them out evenly between every runnable thread, and a pass
//! that needs the CPU at its due instant queues behind request handlers like any of them. A
//! process may not raise a thread's priority without privileges, but it may always lower one:
//! the HTTP worker threads (and the blocking threads they start, which inherit the value)
//! run at a higher nice value than the thread that spawned the scheduler. With idle cores
//! this changes nothing; under contention the scheduler thread wins.
//!
//! Linux only (the nice value is a per-thread attribute there); elsewhere a no-op.

/// The nice value of the calling thread (0 when it cannot be read).
pub fn current_nice() -> i32 {
    imp::current_nice()
}

/// Sets the calling thread's nice value to `base + offset`, capped at 19 (the lowest
/// priority). Computed from a base read once at start, so calling it again on the same thread
/// does not lower it further.
pub fn lower_this_thread(base: i32, offset: u8) -> std::io::Result<()> {
    if offset == 0 {
        return Ok(());
    }
    imp::set_nice((base + i32::from(offset)).min(19))
}

#[cfg(target_os = "linux")]
mod imp {
    use rustix::process::{getpriority_process, setpriority_process};
    use rustix::thread::gettid;

    // On Linux `PRIO_PROCESS` with a thread id addresses that thread alone.
    pub fn current_nice() -> i32 {
        getpriority_process(Some(gettid())).unwrap_or(0)
    }

    pub fn set_nice(value: i32) -> std::io::Result<()> {
        Ok(setpriority_process(Some(gettid()), value)?)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn current_nice() -> i32 {
        0
    }

    pub fn set_nice(_value: i32) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn lowers_only_the_calling_thread_and_only_once() {
        let before_here = current_nice();
        let seen = std::thread::spawn(move || {
            let base = current_nice();
            lower_this_thread(base, 3).expect("lowering is always allowed");
            lower_this_thread(base, 3).expect("again");
            let after = current_nice();
            let child = std::thread::spawn(current_nice).join().expect("child");
            (base, after, child)
        })
        .join()
        .expect("thread");
        let (base, after, child) = seen;
        assert_eq!(
            after,
            (base + 3).min(19),
            "the thread itself, not cumulative"
        );
        assert_eq!(child, after, "threads it starts inherit the value");
        assert_eq!(current_nice(), before_here, "other threads untouched");
    }

    #[test]
    fn offset_zero_changes_nothing_and_the_cap_is_19() {
        std::thread::spawn(|| {
            let base = current_nice();
            lower_this_thread(base, 0).expect("no-op");
            assert_eq!(current_nice(), base);
            lower_this_thread(base, 40).expect("capped");
            assert_eq!(current_nice(), 19);
        })
        .join()
        .expect("thread");
    }
}
