// Runs RocketMQ's MQAdminStartup (the mqadmin tool) without its ~3-5 s idle tail. scripts/rocketmq.sh compiles this
// into $TXBOX_STATE_DIR/rocketmq/bin/classes and $TXBOX_STATE_DIR/rocketmq/bin/mqadmin runs it.
//
// Every mqadmin subcommand ends with DefaultMQAdminExt.shutdown(), which joins the remoting client's
// NettyEventExecutor thread; that thread only looks at its stop flag between 3 s polls of its event queue, and
// afterwards the JVM still waits for Netty's graceful-shutdown quiet period. The command's work (and output) is done
// by then: a watchdog interrupts the idle poll once the main thread is inside NettyRemotingClient.shutdown, and the
// process exits as soon as main0 returns. Output and exit status are MQAdminStartup's own (it exits 0 even when a
// subcommand failed: callers check the output).
import org.apache.rocketmq.tools.command.MQAdminStartup;

public final class TxboxMQAdmin {
	public static void main(String[] args) {
		final Thread main = Thread.currentThread();
		Thread watchdog = new Thread(() -> {
			try {
				while (true) {
					Thread.sleep(20);
					if (inRemotingShutdown(main)) {
						for (Thread t : Thread.getAllStackTraces().keySet()) {
							if (t.getName().equals("NettyEventExecutor") && t.getState() == Thread.State.TIMED_WAITING) {
								t.interrupt();
							}
						}
					}
				}
			} catch (InterruptedException e) {
				// exit
			}
		}, "txbox-mqadmin-watchdog");
		watchdog.setDaemon(true);
		watchdog.start();
		MQAdminStartup.main0(args, null);
		System.out.flush();
		System.err.flush();
		System.exit(0);
	}

	private static boolean inRemotingShutdown(Thread t) {
		for (StackTraceElement e : t.getStackTrace()) {
			if (e.getMethodName().equals("shutdown") && e.getClassName().endsWith(".NettyRemotingClient")) {
				return true;
			}
		}
		return false;
	}
}
