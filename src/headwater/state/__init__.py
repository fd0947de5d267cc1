"""headwater.state"""
