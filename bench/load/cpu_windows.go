package load

import "syscall"

// cpuMillis is the CPU time (user + kernel) this process has used.
func cpuMillis() float64 {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return 0
	}
	var created, exited, kernel, user syscall.Filetime
	if syscall.GetProcessTimes(h, &created, &exited, &kernel, &user) != nil {
		return 0
	}
	return float64(hundredNanos(kernel)+hundredNanos(user)) / 1e4
}

// hundredNanos reads a Filetime holding a duration (Nanoseconds would
// subtract the 1601 epoch, as for a date).
func hundredNanos(ft syscall.Filetime) int64 {
	return int64(ft.HighDateTime)<<32 | int64(ft.LowDateTime)
}
