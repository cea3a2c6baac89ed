"""ppl-edge poses in ROS 2: ``node`` (the rclpy node) and ``convert`` (its ROS-free logic)."""
