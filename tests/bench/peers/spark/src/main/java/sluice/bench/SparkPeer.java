package sluice.bench;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.from_json;
import static org.apache.spark.sql.functions.sum;
import static org.apache.spark.sql.functions.struct;
import static org.apache.spark.sql.functions.timestamp_millis;
import static org.apache.spark.sql.functions.to_json;
import static org.apache.spark.sql.functions.unix_millis;
import static org.apache.spark.sql.functions.window;

import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import org.apache.spark.api.java.function.ForeachPartitionFunction;
import org.apache.spark.api.java.function.VoidFunction2;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.streaming.StreamingQuery;
import org.apache.spark.sql.streaming.StreamingQueryProgress;
import org.apache.spark.sql.streaming.Trigger;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import redis.clients.jedis.Jedis;
import redis.clients.jedis.Pipeline;

/**
 * The Spark Structured Streaming peer of the benchmarks (tests/bench/peers/compare.py), in local
 * mode, local[2] (the cores of the machine).
 *
 * <pre>
 *   SparkPeer w1 BROKERS TOPIC OUT_DIR CHECKPOINT_DIR
 *   SparkPeer w2 BROKERS TOPIC REDIS_HOST:PORT WATERMARK_MS CHECKPOINT_DIR
 *   SparkPeer latency BROKERS TOPIC OUT_TOPIC CHECKPOINT_DIR [realtime|continuous|microbatch]
 * </pre>
 *
 * Both read TOPIC from the earliest offsets with Trigger.AvailableNow (everything there at start,
 * then stop: sluice's available-now trigger), maxOffsetsPerTrigger 500000 (sluice's
 * max_records_per_batch in these jobs). w1: from_json, event = 'buy', select user, amount, into the
 * json file sink (exactly once, its _spark_metadata log). w2: event time timestamp_millis(ts),
 * withWatermark WATERMARK_MS, groupBy 10 s window and user, sum(amount) and count(), append mode,
 * foreachBatch writing every row to Redis as HSET w2:&lt;window_start&gt;:&lt;user&gt; total T
 * orders N (a pipelined jedis connection per partition). Prints {"records": N, "out": M}, N the
 * input rows of the query's progress reports.
 *
 * <p>latency: the latency benchmark's stateless job (tests/bench/latency.py): from the latest
 * offsets, from_json, id % 10 != 7, to_json(id, t, user) into the Kafka sink on OUT_TOPIC, until
 * SIGTERM, with the trigger made for low latency: Trigger.RealTime() (real-time mode, Spark 4.1),
 * or Trigger.Continuous("1 second") (the experimental continuous processing), or microbatch (the
 * default trigger, a micro-batch as soon as the previous one is done). Says "bench_peer: ready" on
 * stderr once the query is active.
 */
public final class SparkPeer {
  static SparkSession session(String name) {
    SparkSession spark =
        SparkSession.builder()
            .appName(name)
            .master(System.getProperty("peer.master", "local[2]"))
            .config("spark.ui.enabled", "false")
            // the driver's block manager and RPC on loopback only
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            // the shuffle of the windowed aggregation: as many partitions as cores
            .config("spark.sql.shuffle.partitions", Integer.getInteger("peer.shuffle", 2))
            .getOrCreate();
    spark.sparkContext().setLogLevel("WARN");
    return spark;
  }

  static void latency(String[] a) throws Exception {
    String mode = a.length > 5 ? a[5] : "realtime";
    SparkSession spark = session("bench-spark-latency");
    StructType schema =
        new StructType()
            .add("id", DataTypes.LongType)
            .add("t", DataTypes.LongType)
            .add("user", DataTypes.StringType);
    var w =
        spark
            .readStream()
            .format("kafka")
            .option("kafka.bootstrap.servers", a[1])
            .option("subscribe", a[2])
            .option("startingOffsets", "latest")
            .load()
            .select(from_json(col("value").cast("string"), schema).as("r"))
            .select("r.*")
            .filter(col("id").mod(10).notEqual(7))
            .select(to_json(struct(col("id"), col("t"), col("user"))).as("value"))
            .writeStream()
            .format("kafka")
            .option("kafka.bootstrap.servers", a[1])
            .option("topic", a[3])
            .option("checkpointLocation", a[4]);
    if (mode.equals("realtime")) {
      w = w.outputMode("update").trigger(Trigger.RealTime());
    } else if (mode.equals("continuous")) {
      w = w.trigger(Trigger.Continuous("1 second"));
    }
    StreamingQuery q = w.start();
    while (!q.isActive() || q.status().message().startsWith("Initializing")) {
      Thread.sleep(10);
    }
    System.err.println("bench_peer: ready (" + mode + ")");
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      try {
        q.stop();
      } catch (Exception e) {
        // stopping anyway
      }
    }));
    q.awaitTermination();
  }

  public static void main(String[] args) throws Exception {
    if (args.length >= 5 && args[0].equals("latency")) {
      latency(args);
      return;
    }
    boolean w1 = args.length == 5 && args[0].equals("w1");
    boolean w2 = args.length == 6 && args[0].equals("w2");
    if (!w1 && !w2) {
      System.err.println(
          "usage: SparkPeer w1 BROKERS TOPIC OUT_DIR CKPT_DIR"
              + " | w2 BROKERS TOPIC REDIS_HOST:PORT WATERMARK_MS CKPT_DIR");
      System.exit(2);
    }
    SparkSession spark = session("bench-spark-" + args[0]);
    StructType schema =
        new StructType()
            .add("user", DataTypes.StringType)
            .add("event", DataTypes.StringType)
            .add("amount", DataTypes.DoubleType)
            .add("ts", DataTypes.LongType);
    Dataset<Row> clicks =
        spark
            .readStream()
            .format("kafka")
            .option("kafka.bootstrap.servers", args[1])
            .option("subscribe", args[2])
            .option("startingOffsets", "earliest")
            .option("maxOffsetsPerTrigger", Long.getLong("peer.batch", 500000))
            .load()
            .select(from_json(col("value").cast("string"), schema).as("r"))
            .select("r.*");
    StreamingQuery q;
    if (w1) {
      q =
          clicks
              .filter(col("event").equalTo("buy"))
              .select("user", "amount")
              .writeStream()
              .format("json")
              .option("path", args[3])
              .option("checkpointLocation", args[4])
              .trigger(Trigger.AvailableNow())
              .start();
    } else {
      String redis = args[3];
      q =
          clicks
              .withColumn("et", timestamp_millis(col("ts")))
              .withWatermark("et", args[4] + " milliseconds")
              .groupBy(window(col("et"), "10 seconds"), col("user"))
              .agg(sum("amount").as("total"), count("*").as("orders"))
              .select(
                  unix_millis(col("window.start")).as("start"),
                  col("user"),
                  col("total"),
                  col("orders"))
              .writeStream()
              .outputMode("append")
              .option("checkpointLocation", args[5])
              .foreachBatch(
                  (VoidFunction2<Dataset<Row>, Long>)
                      (batch, id) -> batch.foreachPartition(new ToRedis(redis)))
              .trigger(Trigger.AvailableNow())
              .start();
    }
    q.awaitTermination();
    long in = 0;
    for (StreamingQueryProgress p : q.recentProgress()) {
      in += p.numInputRows();
    }
    System.out.println("{\"records\": " + in + ", \"out\": null}");
    spark.stop();
    System.exit(0);
  }

  /** HSET per row, pipelined, on one connection per partition. */
  static final class ToRedis implements ForeachPartitionFunction<Row> {
    private final String redis;

    ToRedis(String redis) {
      this.redis = redis;
    }

    @Override
    public void call(Iterator<Row> rows) {
      String[] hp = redis.split(":");
      try (Jedis jedis = new Jedis(hp[0], Integer.parseInt(hp[1]))) {
        Pipeline pipe = jedis.pipelined();
        int queued = 0;
        while (rows.hasNext()) {
          Row r = rows.next();
          Map<String, String> h = new HashMap<>();
          h.put("total", Double.toString(r.getDouble(2)));
          h.put("orders", Long.toString(r.getLong(3)));
          pipe.hset("w2:" + r.getLong(0) + ":" + r.getString(1), h);
          if (++queued >= 1000) {
            pipe.sync();
            queued = 0;
          }
        }
        pipe.sync();
      }
    }
  }
}
