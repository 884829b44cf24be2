package cassops

// The JVM flags of Cassandra 5.0 on Java 17, as conf/jvm-server.options,
// conf/jvm17-server.options and bin/cassandra.in.sh + cassandra-env.sh give them
// to bin/cassandra. Flags meant for large production machines are left out:
// -XX:+AlwaysPreTouch (touches the whole heap before start), -XX:+UseNUMA and
// G1's 16 MiB regions.

// jpmsFlags open the JDK internals Cassandra uses (jvm17-server.options, "JPMS").
var jpmsFlags = []string{
	"-Djdk.attach.allowAttachSelf=true",
	"--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
	"--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
	"--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
	"--add-exports", "java.sql/java.sql=ALL-UNNAMED",
	"--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
	"--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
	"--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
	"--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
	"--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
	"--add-opens", "java.base/java.io=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
	"--add-opens", "java.base/java.lang=ALL-UNNAMED",
	"--add-opens", "java.base/java.util=ALL-UNNAMED",
	// Netty (jvm17-server.options, "Netty Options").
	"-Dio.netty.tryReflectionSetAccessible=true",
	"-Dio.netty.allocator.useCacheForAllThreads=true",
	"-Dio.netty.allocator.maxOrder=11",
}

// serverFlags are jvm-server.options' general settings and the G1 settings of
// jvm17-server.options.
var serverFlags = []string{
	"-ea", "-da:net.openhft...",
	"-XX:+UseThreadPriorities",
	"-XX:+HeapDumpOnOutOfMemoryError",
	"-XX:+CrashOnOutOfMemoryError",
	"-Xss256k",
	"-XX:+UseTLAB", "-XX:+ResizeTLAB",
	"-XX:+PerfDisableSharedMem",
	"-Djava.net.preferIPv4Stack=true",
	"-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
	"-XX:G1RSetUpdatingPauseTimePercent=5", "-XX:MaxGCPauseMillis=300",
	"-XX:InitiatingHeapOccupancyPercent=70",
}

// toolFlags start nodetool and sstableloader quickly: a small heap, the serial
// collector and the C1 compiler only (these JVMs live for seconds).
var toolFlags = []string{
	"-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
	"-Djava.net.preferIPv4Stack=true",
}

// serverLogback logs INFO and above to CASSANDRA_LOG_DIR/system.log, where the
// launcher reads "Starting listening for CQL clients" from.
const serverLogback = `<configuration scan="false">
  <appender name="SYSTEMLOG" class="ch.qos.logback.core.FileAppender">
    <file>${cassandra.logdir}/system.log</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <root level="INFO"><appender-ref ref="SYSTEMLOG"/></root>
</configuration>
`

// toolLogback sends the tools' warnings and errors to stderr.
const toolLogback = `<configuration scan="false">
  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder><pattern>%-5level %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDERR"/></root>
</configuration>
`
