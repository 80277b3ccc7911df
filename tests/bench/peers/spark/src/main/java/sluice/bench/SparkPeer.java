package sluice.bench;

import static org.apache.spark.sql.functions.col;
import static org.apache.spark.sql.functions.count;
import static org.apache.spark.sql.functions.from_json;
import static org.apache.spark.sql.functions.sum;
import static org.apache.spark.sql.functions.timestamp_millis;
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
 */
public final class SparkPeer {
  public static void main(String[] args) throws Exception {
    boolean w1 = args.length == 5 && args[0].equals("w1");
    boolean w2 = args.length == 6 && args[0].equals("w2");
    if (!w1 && !w2) {
      System.err.println(
          "usage: SparkPeer w1 BROKERS TOPIC OUT_DIR CKPT_DIR"
              + " | w2 BROKERS TOPIC REDIS_HOST:PORT WATERMARK_MS CKPT_DIR");
      System.exit(2);
    }
    SparkSession spark =
        SparkSession.builder()
            .appName("bench-spark-" + args[0])
            .master(System.getProperty("peer.master", "local[2]"))
            .config("spark.ui.enabled", "false")
            // the driver's block manager and RPC on loopback only
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.driver.host", "127.0.0.1")
            // the shuffle of the windowed aggregation: as many partitions as cores
            .config("spark.sql.shuffle.partitions", Integer.getInteger("peer.shuffle", 2))
            .getOrCreate();
    spark.sparkContext().setLogLevel("WARN");
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
